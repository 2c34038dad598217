import Testing

@testable import PeatCRDT

struct DocumentTests {
    @Test func mapWritesReadBackAndDeleteRemoves() throws {
        let d = Document(actor: actor(1))
        try d.put(.root, "name", .string("alpha"))
        try d.put(.root, "alt", .double(12.5))
        try d.put(.root, "ts", .timestamp(1_700_000_000_000))
        try d.put(.root, "raw", .bytes([1, 2, 3]))
        d.commit()
        #expect(d.get(.root, "name") == .scalar(.string("alpha")))
        #expect(d.get(.root, "raw") == .scalar(.bytes([1, 2, 3])))
        #expect(d.keys(.root) == ["alt", "name", "raw", "ts"])
        try d.delete(.root, "alt")
        d.commit()
        #expect(d.get(.root, "alt") == nil)
        #expect(d.count(.root) == 3)
        #expect(d.version[actor(1)] == 2)
    }

    @Test func concurrentMapWritesPickTheHighestOpIDAndKeepTheLoserAsConflict() throws {
        let a = Document(actor: actor(1))
        let b = Document(actor: actor(2))
        try a.put(.root, "k", .int(1))
        a.commit()
        try b.put(.root, "k", .int(2))
        b.commit()
        try syncPair(a, b)
        // Same counter (1) on both: actor 2's bytes are greater, so 2 wins on both replicas.
        #expect(a.get(.root, "k") == .scalar(.int(2)))
        #expect(b.get(.root, "k") == .scalar(.int(2)))
        #expect(a.conflicts(.root, "k") == [.scalar(.int(2)), .scalar(.int(1))])
        #expect(b.conflicts(.root, "k") == a.conflicts(.root, "k"))
        // A later write that saw both resolves the conflict everywhere.
        try a.put(.root, "k", .int(3))
        a.commit()
        try syncPair(a, b)
        #expect(b.conflicts(.root, "k") == [.scalar(.int(3))])
    }

    @Test func concurrentListInsertsKeepOneStableOrder() throws {
        let a = Document(actor: actor(1))
        let list = try a.putObject(.root, "l", .list)
        try a.insert(list, at: 0, .string("x"))
        a.commit()
        let b = try Document(loading: a.save(), actor: actor(2))
        try a.insert(list, at: 1, .string("a1"))
        try a.insert(list, at: 2, .string("a2"))
        a.commit()
        try b.insert(list, at: 1, .string("b1"))
        try b.insert(list, at: 0, .string("b0"))
        b.commit()
        try syncPair(a, b)
        let order = a.elements(list)
        #expect(order == b.elements(list))
        #expect(order.count == 5)
        // Each replica's own run stays contiguous and in its order.
        let strings = order.map { v -> String in if case .scalar(.string(let s)) = v { s } else { "?" } }
        let ia1 = strings.firstIndex(of: "a1")!
        let ia2 = strings.firstIndex(of: "a2")!
        #expect(ia2 == ia1 + 1)
        #expect(strings.firstIndex(of: "b0")! < strings.firstIndex(of: "x")!)
    }

    @Test func textSplicesAndConcurrentTypingMerge() throws {
        let a = Document(actor: actor(1))
        let t = try a.putObject(.root, "t", .text)
        try a.spliceText(t, at: 0, inserting: "hello world")
        a.commit()
        let b = try Document(loading: a.save(), actor: actor(2))
        try a.spliceText(t, at: 5, deleting: 6, inserting: "")
        a.commit()
        try b.spliceText(t, at: 11, inserting: "!")
        b.commit()
        try syncPair(a, b)
        #expect(a.text(t) == "hello!")
        #expect(b.text(t) == "hello!")
        #expect(a.count(t) == 6)
        #expect(throws: PeatCRDTError.self) { try a.spliceText(t, at: 7, inserting: "x") }
    }

    @Test func concurrentCounterIncrementsAddUp() throws {
        let a = Document(actor: actor(1))
        try a.put(.root, "n", .counter(10))
        a.commit()
        let b = try Document(loading: a.save(), actor: actor(2))
        let c = try Document(loading: a.save(), actor: actor(3))
        try a.increment(.root, "n", by: 1)
        a.commit()
        try b.increment(.root, "n", by: 5)
        b.commit()
        try c.increment(.root, "n", by: -2)
        c.commit()
        try syncPair(a, b)
        try syncPair(b, c)
        try syncPair(a, c)
        for d in [a, b, c] { #expect(d.get(.root, "n") == .scalar(.counter(14))) }
        #expect(throws: PeatCRDTError.self) { try a.increment(.root, "missing", by: 1) }
    }

    @Test func deletedKeysStayDeletedWhenOldChangesArriveAgain() throws {
        let a = Document(actor: actor(1))
        try a.put(.root, "gone", .string("v"))
        a.commit()
        let old = a.encodeChanges(since: VersionVector())!
        try a.delete(.root, "gone")
        a.commit()
        let b = Document(actor: actor(2))
        try b.applyChanges(a.encodeChanges(since: VersionVector())!)
        try b.applyChanges(old)  // a duplicate of the first write
        #expect(b.get(.root, "gone") == nil)
        // A LatestOnly snapshot taken before the delete does not bring it back either.
        let c = Document(actor: actor(3))
        try c.put(.root, "gone", .string("stale"))
        c.commit()
        let stale = c.latestSnapshot()
        let d = Document(actor: actor(4))
        try d.mergeLatestSnapshot(stale)
        try d.delete(.root, "gone")
        d.commit()
        try d.mergeLatestSnapshot(stale)
        #expect(d.get(.root, "gone") == nil)
    }

    @Test func outOfOrderChangesWaitForTheirDependencies() throws {
        let a = Document(actor: actor(1))
        var batches: [[UInt8]] = []
        var version = VersionVector()
        for i in 0..<5 {
            try a.put(.root, "k\(i)", .int(Int64(i)))
            a.commit()
            batches.append(a.encodeChanges(since: version)!)
            version = a.version
        }
        let b = Document(actor: actor(2))
        for batch in batches.reversed() { try b.applyChanges(batch) }
        #expect(b.queuedChangeCount == 0)
        #expect(b.toJSON() == a.toJSON())
        #expect(b.heads == a.heads)
    }

    @Test func changeHashesAgreeAcrossReplicasAndCoverTheContent() throws {
        let a = Document(actor: actor(1))
        try a.put(.root, "x", .int(1))
        a.commit()
        let b = Document(actor: actor(2))
        try b.put(.root, "y", .int(2))
        b.commit()
        try syncPair(a, b)
        try b.put(.root, "z", .int(3))  // depends on a's change by hash
        b.commit()
        try syncPair(a, b)
        #expect(a.heads == b.heads)
        #expect(a.changeHash(actor: actor(2), seq: 2) == b.changeHash(actor: actor(2), seq: 2))
        let bytes = try #require(b.changeEncoding(actor: actor(2), seq: 2))
        #expect(Document.sha256(bytes) == b.changeHash(actor: actor(2), seq: 2))
        // The dependency on a's change is in the hashed bytes.
        let aHash = try #require(a.changeHash(actor: actor(1), seq: 1))
        #expect(bytes.indices.contains { i in Array(bytes[i..<min(i + 32, bytes.count)]) == aHash.bytes })
    }

    @Test func invalidLocalEditsThrowAndChangeNothing() throws {
        let d = Document(actor: actor(1))
        let l = try d.putObject(.root, "l", .list)
        d.commit()
        #expect(throws: PeatCRDTError.self) { try d.insert(l, at: 2, .null) }
        #expect(throws: PeatCRDTError.self) { try d.remove(l, at: 0) }
        #expect(throws: PeatCRDTError.self) { try d.put(l, "k", .null) }
        #expect(!d.hasPendingChanges)
        var parent = ObjectID.root
        for _ in 0..<Document.maximumDepth { parent = try d.putObject(parent, "m", .map) }
        #expect(throws: PeatCRDTError.self) { try d.putObject(parent, "m", .map) }
    }
}
