import Testing

@testable import PeatCRDT

struct SyncTests {
    /// A 5-field beacon written by two actors: the compact snapshot (format 2) names each actor once,
    /// merges exactly like the canonical one, and a bad actor index is refused.
    @Test func compactSnapshotsMergeLikeCanonicalOnesAndAreSmaller() throws {
        let a = Document(actor: actor(1))
        for (k, v) in [("lat", 59.3293), ("lon", 18.0686), ("alt", 28.0), ("heading", 270.5)] { try a.put(.root, k, .double(v)) }
        a.commit()
        let b = Document(actor: actor(2))
        try b.put(.root, "seq", .int(41))
        b.commit()
        _ = try a.mergeLatestSnapshot(b.latestSnapshot())
        let canonical = a.latestSnapshot()
        let compact = a.latestSnapshot(compact: true)
        #expect(compact.first == 2 && canonical.first == 1)
        #expect(compact.count + 40 <= canonical.count, "\(compact.count) vs \(canonical.count) bytes")
        let fromCanonical = Document(actor: actor(3))
        let fromCompact = Document(actor: actor(3))
        #expect(try fromCanonical.mergeLatestSnapshot(canonical))
        #expect(try fromCompact.mergeLatestSnapshot(compact))
        #expect(fromCompact.toJSON() == fromCanonical.toJSON())
        #expect(fromCompact.latestSnapshot() == canonical)
        #expect(fromCompact.syncDigest(mode: .latestOnly) == a.syncDigest(mode: .latestOnly))
        // Two actors in the table; an index past it is malformed, and nothing is merged.
        let bad: [UInt8] = [2, 1] + [UInt8](repeating: 7, count: 16) + [1, 3] + Array("lat".utf8) + [1, 5, 0]
        let target = Document(actor: actor(4))
        #expect(throws: PeatCRDTError.self) { try target.mergeLatestSnapshot(bad) }
        #expect(target.toJSON() == .object([:]))
    }

    @Test func equalReplicasExchangeOneSmallSummaryEachWay() throws {
        let a = Document(actor: actor(1))
        for i in 0..<100 {
            try a.put(.root, "k\(i)", .int(Int64(i)))
            a.commit()
        }
        let b = try Document(loading: a.save(), actor: actor(2))
        var sa = SyncState()
        var sb = SyncState()
        let m1 = try #require(a.generateSyncMessage(&sa, mode: .fullHistory))
        try b.receiveSyncMessage(m1, &sb, mode: .fullHistory)
        let m2 = try #require(b.generateSyncMessage(&sb, mode: .fullHistory))
        try a.receiveSyncMessage(m2, &sa, mode: .fullHistory)
        #expect(m1.count < 40 && m2.count < 40)
        #expect(a.generateSyncMessage(&sa, mode: .fullHistory) == nil)
        #expect(b.generateSyncMessage(&sb, mode: .fullHistory) == nil)
    }

    @Test(arguments: [SyncMode.fullHistory, .latestOnly])
    func restoredSyncStateSendsOnlyWhatThePeerLacksInOneMessage(_ mode: SyncMode) throws {
        let a = Document(actor: actor(1))
        for i in 0..<50 {
            try a.put(.root, "k\(i)", .string(String(repeating: "x", count: 100)))
            a.commit()
        }
        let b = Document(actor: actor(2))
        var sa = SyncState()
        var sb = SyncState()
        try syncLoop(a, &sa, b, &sb, mode: mode)
        #expect(a.syncDigest(mode: mode) == b.syncDigest(mode: mode))
        // The connection closes; what b confirmed survives as bytes.
        let kept = sa.persistentBytes()
        var restored = try SyncState(restoring: kept)
        #expect(restored.theirVersion == sa.theirVersion)
        try a.put(.root, "new", .int(1))
        a.commit()
        #expect(a.syncDigest(mode: mode) != b.syncDigest(mode: mode))
        let first = try #require(a.generateSyncMessage(&restored, mode: mode))
        var fresh = SyncState()
        try b.receiveSyncMessage(first, &fresh, mode: mode)
        #expect(b.get(.root, "new") == .scalar(.int(1)))
        if mode == .fullHistory { #expect(first.count < 80) }
        #expect(a.syncDigest(mode: mode) == b.syncDigest(mode: mode))
        // Garbage is an error, not a trap.
        for bad in [[], [2, 0], [1, 4], [1, 2, 3, 1, 2, 3], kept + [0]] as [[UInt8]] {
            #expect(throws: PeatCRDTError.self) { try SyncState(restoring: bad) }
        }
    }

    @Test func onlyMissingChangesAreSentAndPushFollowsALocalWrite() throws {
        let a = Document(actor: actor(1))
        for i in 0..<50 {
            try a.put(.root, "k\(i)", .string(String(repeating: "x", count: 100)))
            a.commit()
        }
        let b = try Document(loading: a.save(), actor: actor(2))
        var sa = SyncState()
        var sb = SyncState()
        try syncLoop(a, &sa, b, &sb)
        // One new write: the next message carries just that change.
        try a.put(.root, "new", .int(1))
        a.commit()
        let push = try #require(a.generateSyncMessage(&sa, mode: .fullHistory))
        #expect(push.count < 60)
        try b.receiveSyncMessage(push, &sb, mode: .fullHistory)
        #expect(b.get(.root, "new") == .scalar(.int(1)))
    }

    @Test func latestOnlyConvergesPerFieldAndHonoursDeletes() throws {
        let a = Document(actor: actor(1))
        let b = Document(actor: actor(2))
        try a.put(.root, "lat", .double(1.5))
        try a.put(.root, "name", .string("a"))
        a.commit()
        try b.put(.root, "lon", .double(2.5))
        b.commit()
        try syncPair(a, b, mode: .latestOnly)
        #expect(a.toJSON() == b.toJSON())
        #expect(a.toJSON() == .object(["lat": .double(1.5), "lon": .double(2.5), "name": .string("a")]))
        try b.delete(.root, "name")
        b.commit()
        try a.put(.root, "lat", .double(9))
        a.commit()
        try syncPair(a, b, mode: .latestOnly)
        #expect(a.toJSON() == .object(["lat": .double(9), "lon": .double(2.5)]))
        #expect(b.toJSON() == a.toJSON())
        #expect(a.historyCount >= 2)
        a.compact()
        try syncPair(a, b, mode: .latestOnly)
        #expect(try syncPair(a, b, mode: .latestOnly) == 2)  // fresh states: one digest each way
        #expect(a.latestSnapshot() == b.latestSnapshot())
    }

    /// A replica that only ever received LatestOnly snapshots (no change explains its state) saves
    /// and reloads that state, before and after a local edit of its own.
    @Test func stateMergedFromASnapshotSurvivesSaveAndLoad() throws {
        let a = Document(actor: actor(1))
        try a.put(.root, "lat", .double(1.5))
        let nested = try a.putObject(.root, "meta", .map)
        try a.put(nested, "name", .string("alpha"))
        a.commit()
        let b = Document(actor: actor(2))
        try syncPair(a, b, mode: .latestOnly)
        #expect(b.toJSON() == a.toJSON())
        let reloaded = try Document(loading: b.save(), actor: actor(2))
        #expect(reloaded.toJSON() == a.toJSON())
        #expect(reloaded.syncDigest(mode: .latestOnly) == a.syncDigest(mode: .latestOnly))
        try reloaded.put(.root, "speed", .int(7))
        reloaded.commit()
        let again = try Document(loading: reloaded.save(), actor: actor(2))
        #expect(again.toJSON() == reloaded.toJSON())
        try syncPair(again, a, mode: .latestOnly)
        #expect(a.toJSON() == again.toJSON())
        #expect(a.get(.root, "speed") == .scalar(.int(7)))
    }

    @Test func windowedHistoryFallsBackToASnapshotForDroppedChanges() throws {
        let a = Document(actor: actor(1))
        for i in 0..<10 {
            try a.put(.root, "old\(i)", .int(Int64(i)))
            a.commit(time: 1_000)
        }
        try a.put(.root, "recent", .int(1))
        a.commit(time: 100_000)
        #expect(a.dropHistory(before: 50_000) == 10)
        #expect(a.historyCount == 1)
        let b = Document(actor: actor(2))
        try syncPair(a, b, mode: .windowedHistory(seconds: 60))
        #expect(b.toJSON() == a.toJSON())
        // After the snapshot, deltas flow again.
        try a.put(.root, "later", .int(2))
        a.commit(time: 200_000)
        try syncPair(a, b, mode: .windowedHistory(seconds: 60))
        #expect(b.get(.root, "later") == .scalar(.int(2)))
        // A peer that already had the dropped part gets plain changes.
        let c = Document(actor: actor(3))
        #expect(a.canServeChanges(since: b.version))
        #expect(!a.canServeChanges(since: c.version))
    }

    @Test func messagesForTheWrongModeAreRefused() throws {
        let a = Document(actor: actor(1))
        try a.put(.root, "k", .int(1))
        var s = SyncState()
        let m = try #require(a.generateSyncMessage(&s, mode: .fullHistory))
        var t = SyncState()
        #expect(throws: PeatCRDTError.self) { try Document(actor: actor(2)).receiveSyncMessage(m, &t, mode: .latestOnly) }
    }

    private func syncLoop(_ a: Document, _ sa: inout SyncState, _ b: Document, _ sb: inout SyncState, mode: SyncMode = .fullHistory) throws {
        for _ in 0..<10 {
            let m1 = a.generateSyncMessage(&sa, mode: mode)
            if let m1 { try b.receiveSyncMessage(m1, &sb, mode: mode) }
            let m2 = b.generateSyncMessage(&sb, mode: mode)
            if let m2 { try a.receiveSyncMessage(m2, &sa, mode: mode) }
            if m1 == nil, m2 == nil { return }
        }
    }
}
