public import PeatCRDT

/// Which sync mode each collection uses (DESIGN §5): the defaults below, overridable per collection.
public struct SyncModeRegistry: Sendable, Equatable {
    /// The collections with a default mode; every other collection is `fullHistory`.
    public static let defaultModes: [String: SyncMode] = {
        var modes: [String: SyncMode] = [:]
        for name in [
            "beacons", "platforms", "tracks", "nodes", "cells", "node_states", "squad_summaries",
            "platoon_summaries", "company_summaries",
        ] {
            modes[name] = .latestOnly
        }
        for name in ["contact_reports", "commands", "audit_logs", "alerts"] { modes[name] = .fullHistory }
        modes["track_history"] = .windowedHistory(seconds: 3600)
        modes["capability_history"] = .windowedHistory(seconds: 3600)
        return modes
    }()

    /// The mode of every collection that is named explicitly.
    public private(set) var modes: [String: SyncMode]
    /// The mode of collections not named in `modes`.
    public var fallback: SyncMode

    /// A registry with the default modes, then `overrides` applied.
    public init(overrides: [String: SyncMode] = [:], fallback: SyncMode = .fullHistory) {
        modes = Self.defaultModes.merging(overrides) { _, override in override }
        self.fallback = fallback
    }

    /// The mode of `collection`.
    public func mode(for collection: String) -> SyncMode {
        modes[collection] ?? fallback
    }

    /// Sets the mode of one collection.
    public mutating func set(_ collection: String, _ mode: SyncMode) {
        modes[collection] = mode
    }

    /// The named LatestOnly collections, sorted: what compaction covers when no list is given.
    public var latestOnlyCollections: [String] {
        modes.filter { $0.value == .latestOnly }.keys.sorted()
    }

    /// The named WindowedHistory collections and their windows.
    public var windowedCollections: [(collection: String, seconds: UInt32)] {
        modes.compactMap { name, mode in
            if case .windowedHistory(let seconds) = mode { return (name, seconds) }
            return nil
        }.sorted { $0.collection < $1.collection }
    }

    /// Parses one mode as the original's `PEAT_SYNC_MODE_OVERRIDES` writes it:
    /// `latest_only`, `full_history` or `windowed:<seconds>`.
    public static func parseMode(_ text: String) -> SyncMode? {
        switch text {
        case "latest_only": return .latestOnly
        case "full_history": return .fullHistory
        default:
            guard text.hasPrefix("windowed:"), let seconds = UInt32(text.dropFirst("windowed:".count)), seconds > 0,
                text.dropFirst("windowed:".count).allSatisfy(\.isASCII)
            else { return nil }
            return .windowedHistory(seconds: seconds)
        }
    }
}
