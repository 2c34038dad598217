import PeatCRDT
import PeatStorage

/// The decoded documents kept in memory, least recently used evicted first.
///
/// Every decoded copy gets a new `generation`: a peer's per-document sync state records the
/// generation it was last used with, so what it believed it had sent about an evicted copy is
/// forgotten when a new copy is loaded (`DocumentSyncState.adopt(_:)`).
struct DocumentCache {
    struct Entry {
        /// The decoded document (a reference: edits through it change the cached copy).
        let document: Document
        /// The store version it was loaded from or last written as (0: never stored).
        var version: UInt64
        /// Which decoded copy this is.
        let generation: UInt64
        fileprivate(set) var lastUse: UInt64
    }

    private var entries: [DocumentKey: Entry] = [:]
    private var useClock: UInt64 = 0
    private var nextGeneration: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
    }

    /// The cached copy under `key`, marked as just used.
    mutating func entry(_ key: DocumentKey) -> Entry? {
        guard var entry = entries[key] else { return nil }
        useClock &+= 1
        entry.lastUse = useClock
        entries[key] = entry
        return entry
    }

    /// Caches a newly decoded (or created) copy; evicts the least recently used quarter when full.
    mutating func insert(_ key: DocumentKey, _ document: Document, version: UInt64) -> Entry {
        useClock &+= 1
        nextGeneration &+= 1
        let entry = Entry(document: document, version: version, generation: nextGeneration, lastUse: useClock)
        entries[key] = entry
        if entries.count > capacity {
            let victims = entries.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(entries.count - capacity * 3 / 4)
            for (victim, _) in victims where victim != key { entries[victim] = nil }
        }
        return entry
    }

    /// Records the store version a copy was written as. The written copy is what the store holds
    /// now: it is cached again if it was evicted meanwhile, replacing any copy loaded since.
    mutating func keep(_ key: DocumentKey, _ entry: Entry, version: UInt64) {
        var entry = entry
        entry.version = version
        useClock &+= 1
        entry.lastUse = useClock
        entries[key] = entry
    }

    /// Drops a copy (its in-memory edits are not in the store, or it must be reread).
    mutating func remove(_ key: DocumentKey) {
        entries[key] = nil
    }
}
