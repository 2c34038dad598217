/// The versions of the document sync protocol, negotiated with ALPN: a node offers every version it
/// speaks, newest first, and a session runs the newest both sides speak — so nodes of an earlier
/// version (protocol 1 only) and of this one sync with each other during a rolling upgrade.
public enum SyncProtocolVersion: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    /// `peat/sync/1`: the first mesh protocol (docs/adr/0005-mesh-sync-protocol.md).
    case v1 = 1
    /// `peat/sync/2`: priority lanes, resumable transfers in parts, compact LatestOnly snapshots
    /// (docs/adr/0008-ddil-sync.md).
    case v2 = 2

    /// The newest version, which this node prefers.
    public static let current = v2

    /// The ALPN protocol ID.
    public var alpn: String { "peat/sync/\(rawValue)" }

    /// The ALPN protocol IDs of `versions`, newest first (the order both TLS and messages offer them).
    public static func alpns(_ versions: [Self]) -> [String] {
        versions.sorted(by: >).map(\.alpn)
    }

    /// The version an ALPN protocol ID names; nil for anything else.
    public init?(alpn: String) {
        guard let version = Self.allCases.first(where: { $0.alpn == alpn }) else { return nil }
        self = version
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { alpn }
}
