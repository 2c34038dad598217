public import PeatCRDT

/// How urgently a collection's changes leave this node: a session sends every waiting frame of a
/// higher priority before one of a lower, so a backlog of bulk changes never holds back an alert or
/// a position by more than the one frame already being written. See docs/adr/0008-ddil-sync.md.
public enum SyncPriority: Int, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    /// Alerts and commands: ahead of everything.
    case high = 0
    /// Positions and other LatestOnly state.
    case normal = 1
    /// History, reports, bulk and catch-up.
    case low = 2

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `high`, `normal` or `low`: the spelling `PEAT_SYNC_PRIORITY_OVERRIDES` uses.
    public var description: String {
        switch self {
        case .high: "high"
        case .normal: "normal"
        case .low: "low"
        }
    }

    /// Parses `high`, `normal` or `low`.
    public init?(parsing text: String) {
        guard let priority = Self.allCases.first(where: { $0.description == text }) else { return nil }
        self = priority
    }
}

/// Which priority each collection's changes travel at: named collections first, then the
/// collection's sync mode (LatestOnly is `normal`, the history modes `low`).
public struct SyncPriorityRegistry: Sendable, Equatable {
    /// The collections with a default priority other than their mode's.
    public static let defaultPriorities: [String: SyncPriority] = ["alerts": .high, "commands": .high]

    /// The priority of every collection that is named explicitly.
    public private(set) var priorities: [String: SyncPriority]

    /// The defaults, then `overrides` applied.
    public init(overrides: [String: SyncPriority] = [:]) {
        priorities = Self.defaultPriorities.merging(overrides) { _, override in override }
    }

    /// The priority of `collection`, whose sync mode is `mode`.
    public func priority(for collection: String, mode: SyncMode) -> SyncPriority {
        if let named = priorities[collection] { return named }
        if case .latestOnly = mode { return .normal }
        return .low
    }

    /// Sets the priority of one collection.
    public mutating func set(_ collection: String, _ priority: SyncPriority) {
        priorities[collection] = priority
    }
}
