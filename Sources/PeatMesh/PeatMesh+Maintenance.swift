import PeatCRDT
import PeatStorage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one compaction sweep did.
public struct CompactionReport: Sendable, Equatable {
    /// Documents rebuilt without history.
    public var documents = 0
    /// Their stored size before and after.
    public var bytesBefore = 0
    public var bytesAfter = 0
}

extension PeatMesh {
    /// The collections compaction covers, or nil when it does not run; logs the original's lines.
    func compactionPlan() -> [String]? {
        let compaction = configuration.compaction
        guard compaction.enabled else {
            logger.info("Background compaction disabled")
            return nil
        }
        let registry = configuration.syncModes
        var collections = compaction.collections
        if collections.isEmpty {
            collections = registry.latestOnlyCollections
            logger.info("Auto-derived compaction collections from LatestOnly sync modes collections=\(Self.list(collections))")
        }
        for collection in collections where registry.mode(for: collection) != .latestOnly {
            logger.warning(
                "Compacting a non-LatestOnly collection destroys change history needed for delta sync collection=\(collection) sync_mode=\(registry.mode(for: collection))"
            )
        }
        guard !collections.isEmpty else {
            logger.info("Compaction enabled but no eligible collections found; skipping")
            return nil
        }
        logger.info(
            "Background compaction started (per-collection) interval_secs=\(compaction.effectiveInterval.components.seconds) threshold_bytes=\(compaction.thresholdBytes) collections=\(Self.list(collections))"
        )
        return collections
    }

    /// `["a", "b"]`, as the original prints a list of collections.
    static func list(_ names: [String]) -> String {
        "[" + names.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }

    /// Runs compaction sweeps and history windows on their intervals until cancelled.
    func maintain() async {
        await maintain(on: clock)
    }

    private func maintain<C: Clock<Duration>>(on clock: C) async {
        let collections = compactionPlan()
        let windowed = configuration.syncModes.windowedCollections
        let compactionInterval = configuration.compaction.effectiveInterval
        var nextCompaction = clock.now.advanced(by: compactionInterval)
        var nextWindow = clock.now.advanced(by: configuration.historyWindowInterval)
        while !Task.isCancelled, collections != nil || !windowed.isEmpty {
            let wake = collections == nil ? nextWindow : (windowed.isEmpty ? nextCompaction : min(nextCompaction, nextWindow))
            do { try await clock.sleep(until: wake, tolerance: nil) } catch { return }
            if let collections, clock.now >= nextCompaction {
                _ = await compact(collections)
                nextCompaction = clock.now.advanced(by: compactionInterval)
            }
            if !windowed.isEmpty, clock.now >= nextWindow {
                await applyHistoryWindows()
                nextWindow = clock.now.advanced(by: configuration.historyWindowInterval)
            }
        }
    }

    /// Compacts the documents of `collections` above the size threshold now.
    @discardableResult
    public func compact(_ collections: [String]) async -> CompactionReport {
        var report = CompactionReport()
        for collection in collections {
            let result = await coordinator.compact(collection, largerThan: configuration.compaction.thresholdBytes)
            guard result.documents > 0 else { continue }
            logger.info(
                "Compacted documents collection=\(collection) documents=\(result.documents) bytes_before=\(result.before) bytes_after=\(result.after)")
            report.documents += result.documents
            report.bytesBefore += result.before
            report.bytesAfter += result.after
        }
        return report
    }

    /// Drops history older than each WindowedHistory collection's window.
    func applyHistoryWindows() async {
        let nowMilliseconds = Int64(Date.now.timeIntervalSince1970 * 1000)
        for (collection, seconds) in configuration.syncModes.windowedCollections {
            let result = await coordinator.dropHistory(collection, olderThan: nowMilliseconds - Int64(seconds) * 1000)
            if result.documents > 0 {
                logger.info("History window applied collection=\(collection) documents=\(result.documents) changes_dropped=\(result.changes)")
            }
        }
    }
}
