import PeatCRDT

/// What one peer's session knows about one document: the CRDT's sync state, and which decoded copy
/// of the document that state was last used with.
///
/// The CRDT state remembers which LatestOnly state it sent a snapshot of by the copy's own state
/// counter, which is only valid with that copy. When the repository hands a state another copy (the
/// first was evicted and reloaded), `adopt(_:)` forgets that and keeps the rest.
struct DocumentSyncState: Equatable, Sendable {
    var crdt: SyncState
    private(set) var generation: UInt64?

    init(crdt: SyncState = SyncState()) {
        self.crdt = crdt
    }

    /// Restores what a peer confirmed in an earlier session (`SyncState.persistentBytes()`); an
    /// unreadable record starts over.
    init(confirmed bytes: [UInt8]) {
        self.init(crdt: (try? SyncState(restoring: bytes)) ?? SyncState())
    }

    /// Makes the state fit the decoded copy `generation`: what it recorded about an earlier copy's
    /// states is dropped (what it recorded about content stays: forgetting what was sent on every
    /// reload made two replicas whose documents do not fit the cache announce their versions to each
    /// other without end).
    mutating func adopt(_ generation: UInt64) {
        if let current = self.generation, current != generation { crdt.forgetCopy() }
        self.generation = generation
    }

    /// Keeps only what the peer itself confirmed: the next message is at least a summary.
    mutating func forgetSent() {
        crdt = (try? SyncState(restoring: crdt.persistentBytes())) ?? SyncState()
    }
}
