/// How a collection's documents synchronise (DESIGN §5).
public enum SyncMode: Hashable, Sendable, CustomStringConvertible {
    /// History-free snapshots with per-field winners, sent only when they changed.
    case latestOnly
    /// Version summaries, then exactly the missing changes in causal order.
    case fullHistory
    /// Like `fullHistory`, but history older than the window may be dropped (`Document.dropHistory(before:)`);
    /// a peer that needs dropped changes gets a snapshot instead.
    case windowedHistory(seconds: UInt32)

    public var description: String {
        switch self {
        case .latestOnly: "LatestOnly"
        case .fullHistory: "FullHistory"
        case .windowedHistory(let s): "WindowedHistory(\(s))"
        }
    }
}
