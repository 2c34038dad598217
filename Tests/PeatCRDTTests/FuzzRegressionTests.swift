import Testing

@testable import PeatCRDT

/// Inputs the fuzz targets (`Fuzz/`, `make fuzz`) turned up, each refused with an error now instead of
/// leaving a document that traps on its next edit.
struct FuzzRegressionTests {
    static let own = ActorID(bytes: [UInt8](repeating: 0xF0, count: 16))!
    /// ULEB128 of 2^64 - 1: ten bytes.
    static let largestCounter: [UInt8] = [UInt8](repeating: 0xFF, count: 9) + [0x01]

    /// A saved document: format 1, flags "state section", one actor, the state, no changes.
    static func savedDocument(actor: ActorID, state: [UInt8]) -> [UInt8] {
        [1, ChangeBatch.flagState, 1] + actor.bytes + [UInt8(state.count)] + state
    }

    /// A state section with no writers, no dropped hashes and an empty root after `maxOp`.
    static let emptyStateTail: [UInt8] = [0, 0, 0, 0, 0, 0]

    /// FuzzSavedDocument: an op counter of 2^64 - 1 loaded, then `put` overflowed computing the next id.
    @Test func savedStateWithTheLargestOpCounterIsRefused() throws {
        let bytes = Self.savedDocument(actor: actor(1), state: Self.largestCounter + Self.emptyStateTail)
        #expect(throws: PeatCRDTError.self) { try Document(loading: bytes, actor: Self.own) }
    }

    /// FuzzSavedDocument: this replica's own seq of 2^64 - 1 loaded, then `commit` overflowed.
    @Test func savedStateWithTheLargestSequenceNumberIsRefused() throws {
        // maxOp 5; one writer: actor 0 at seq 2^64 - 1 with history base 2^64 - 1; then the empty tables and root.
        let state: [UInt8] = [5, 1, 0] + Self.largestCounter + Self.largestCounter + [0, 0, 0, 0, 0]
        #expect(throws: PeatCRDTError.self) { try Document(loading: Self.savedDocument(actor: Self.own, state: state), actor: Self.own) }
        // The same state one below the bound loads and still takes an edit.
        let bounded = ulebBytes(UInt64.max / 2 - 1)
        let doc = try Document(loading: Self.savedDocument(actor: Self.own, state: [5, 1, 0] + bounded + bounded + [0, 0, 0, 0, 0]), actor: Self.own)
        try doc.put(.root, "after", .int(1))
        #expect(doc.commit())
    }

    /// FuzzSyncMessage: a peer's snapshot standing in for history claimed this replica's own actor at
    /// seq 2^64 - 1; the document adopted it and its next local `commit` overflowed.
    @Test func historySnapshotCannotClaimTheLargestSequenceNumber() throws {
        let doc = Document(actor: Self.own)
        var state = SyncState()
        // Format 1, historySnapshot, a version vector of one entry (this actor, 2^64 - 1), an empty snapshot.
        let message: [UInt8] = [1, SyncMessage.historySnapshot, 1] + Self.own.bytes + Self.largestCounter + [2, 1, 0]
        #expect(throws: PeatCRDTError.self) { try doc.receiveSyncMessage(message, &state, mode: .fullHistory) }
        try doc.put(.root, "after", .int(1))
        #expect(doc.commit())
        #expect(throws: PeatCRDTError.self) { try VersionVector(decoding: [1] + Self.own.bytes + Self.largestCounter) }
    }
}

/// The ULEB128 encoding of `value`.
private func ulebBytes(_ value: UInt64) -> [UInt8] {
    var w = ByteWriter()
    w.uleb(value)
    return w.bytes
}
