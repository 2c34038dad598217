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
        // The same state just below the bound loads and still takes an edit.
        let bounded = ulebBytes(ChangeBatchDecoder.counterLimit - 2)
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

    /// FuzzSavedDocument: a state whose op counter sat just below the decoder's bound loaded and took
    /// an edit, whose change the decoder then refused: the document saved but no longer loaded.
    @Test func editsNearTheCounterBoundStillReload() throws {
        for maxOp in [ChangeBatchDecoder.counterLimit - 3, ChangeBatchDecoder.counterLimit - 2] {
            let doc = try Document(loading: Self.savedDocument(actor: actor(1), state: ulebBytes(maxOp) + Self.emptyStateTail), actor: Self.own)
            let edited = (try? doc.put(.root, "edit", .int(1))) != nil
            #expect(edited == (maxOp < ChangeBatchDecoder.counterLimit - 2))
            doc.commit()
            let reloaded = try Document(loading: doc.save(), actor: Self.own)
            #expect(reloaded.latestSnapshot() == doc.latestSnapshot())
        }
    }

    /// One snapshot field: key, version (counter, actor), then a live value.
    static func snapshotField(_ key: String, _ counter: UInt8, _ actor: ActorID, _ value: [UInt8]) -> [UInt8] {
        [UInt8(key.utf8.count)] + Array(key.utf8) + [counter] + actor.bytes + [1] + value
    }

    /// A map holding `x`: 1 (or nothing), as a snapshot writes it.
    static let mapTree: [UInt8] = [0x20, 1, 1, UInt8(ascii: "x"), OpCodec.Action.int.rawValue, 1]
    static let emptyMapTree: [UInt8] = [0x20, 0]

    /// FuzzSnapshot: two fields with one version made two fields share one object; the saved document
    /// then failed to load ("duplicate object id in state"), and replacing one field could remove the
    /// other's object.
    @Test func snapshotGivingTwoFieldsOneObjectIsRefused() throws {
        let doc = Document(actor: Self.own)
        try doc.put(.root, "kept", .int(1))
        doc.commit()
        let before = doc.latestSnapshot()
        let snapshot = [1, 2] + Self.snapshotField("tags", 117, actor(9), Self.mapTree) + Self.snapshotField("tag/", 117, actor(9), Self.emptyMapTree)
        #expect(throws: PeatCRDTError.self) { try doc.mergeLatestSnapshot(snapshot) }
        #expect(doc.latestSnapshot() == before)
        // One key twice is a replacement, not a conflict.
        let twice = [1, 2] + Self.snapshotField("tags", 117, actor(9), Self.mapTree) + Self.snapshotField("tags", 117, actor(9), Self.emptyMapTree)
        #expect(try doc.mergeLatestSnapshot(twice))
        #expect(try Document(loading: doc.save(), actor: Self.own).latestSnapshot() == doc.latestSnapshot())
    }

    /// A field's version naming an object another field holds is refused the same way.
    @Test func snapshotTakingAnotherFieldsObjectIDIsRefused() throws {
        let doc = Document(actor: Self.own)
        try doc.putObject(.root, "a", .map)  // op 1 by this actor
        doc.commit()
        let snapshot = [1, 1] + Self.snapshotField("b", 1, Self.own, Self.emptyMapTree)
        #expect(throws: PeatCRDTError.self) { try doc.mergeLatestSnapshot(snapshot) }
        #expect(try Document(loading: doc.save(), actor: Self.own).latestSnapshot() == doc.latestSnapshot())
    }

    /// The local ids of a merged field's nested objects never equal a later field's version.
    @Test func snapshotNestedObjectIDsAvoidLaterVersions() throws {
        let doc = Document(actor: Self.own)
        // "a" (version 5) holds a nested map, which takes a local id; "b" claims version 6 of this actor.
        let nested: [UInt8] = [0x20, 1, 1, UInt8(ascii: "m")] + Self.emptyMapTree
        let snapshot = [1, 2] + Self.snapshotField("a", 5, actor(9), nested) + Self.snapshotField("b", 6, Self.own, Self.emptyMapTree)
        #expect(try doc.mergeLatestSnapshot(snapshot))
        let reloaded = try Document(loading: doc.save(), actor: Self.own)
        #expect(reloaded.latestSnapshot() == doc.latestSnapshot())
    }
}

/// The ULEB128 encoding of `value`.
private func ulebBytes(_ value: UInt64) -> [UInt8] {
    var w = ByteWriter()
    w.uleb(value)
    return w.bytes
}
