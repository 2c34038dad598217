/// Background compaction: documents of the chosen collections larger than a threshold are rebuilt
/// from their state without history (`PEAT_COMPACTION_*` in the node).
public struct CompactionConfiguration: Sendable, Equatable {
    /// The shortest sweep interval; a shorter configured one is raised to this.
    public static let minimumInterval: Duration = .seconds(10)

    public var enabled = false
    /// Time between sweeps (at least `minimumInterval`).
    public var interval: Duration = .seconds(300)
    /// Only documents larger than this many stored bytes are compacted.
    public var thresholdBytes = 65_536
    /// The collections to compact; empty means every named LatestOnly collection.
    public var collections: [String] = []

    public init(enabled: Bool = false, interval: Duration = .seconds(300), thresholdBytes: Int = 65_536, collections: [String] = []) {
        self.enabled = enabled
        self.interval = interval
        self.thresholdBytes = thresholdBytes
        self.collections = collections
    }

    /// The interval the sweep really uses.
    public var effectiveInterval: Duration { max(interval, Self.minimumInterval) }
}
