import PeatCRDT
import Testing

@testable import PeatMesh
@testable import PeatStorage

/// The per-peer sync state machine driven without a network: two replicas, frames moved by hand.
struct SyncStateMachineTests {
    @Test func emptyReplicasExchangeHelloAndOneRootEachThenNothing() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        let first = try pair.exchange()
        // Each side: hello, then its root; the first root to arrive is answered with a reply root.
        #expect(first.kinds["hello"] == 2)
        #expect(first.kinds["groups"] == nil && first.kinds["documents"] == nil)
        #expect(pair.ab.peerNodeID == "node-b" && pair.ba.peerNodeID == "node-a")
        #expect(pair.ab.agreedRoot != nil && pair.ab.agreedRoot == pair.ba.agreedRoot)
        #expect(try pair.exchange().frames == 0)
    }

    @Test func peersInSyncExchangeNothingOnAntiEntropy() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        for n in 0..<50 { try pair.write(.replace(["n": .int(Int64(n))]), n % 2 == 0 ? "beacons" : "commands", "d\(n)", on: .aToB) }
        try pair.exchange()
        #expect(try pair.b.value("commands", "d49") == ["n": .int(49)])
        // The roots moved since both last agreed: the first pass compares them once (root and reply,
        // nothing else), then passes offer nothing while nothing changes.
        try expectOneRootComparison(&pair)
        for _ in 0..<10 {
            let quiet = pair.tick()
            #expect(!quiet)
            #expect(try pair.exchange().frames == 0)
        }
    }

    @Test func aLostFrameIsRepairedByTheNextAntiEntropyPass() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        try pair.write(.replace(["callsign": .string("alpha")]), "beacons", "b1", on: .aToB)
        try pair.write(.replace(["verb": .string("go")]), "commands", "c1", on: .aToB)
        let lost = try pair.exchange { direction, message in
            if case .documents = message { return direction == .aToB }
            return false
        }
        #expect(lost.dropped >= 1)
        #expect(try pair.b.value("beacons", "b1") == nil)
        // Push lost it; the roots now differ, so the next pass finds and sends exactly what is missing.
        let offered = pair.tick()
        #expect(offered)
        let repair = try pair.exchange()
        #expect(repair.kinds["root"] != nil && repair.kinds["groups"] != nil && repair.kinds["keys"] != nil)
        #expect(try pair.b.value("beacons", "b1") == ["callsign": .string("alpha")])
        #expect(try pair.b.value("commands", "c1") == ["verb": .string("go")])
        // One more root comparison confirms the repair; then nothing.
        try expectOneRootComparison(&pair)
        let quiet = pair.tick()
        #expect(!quiet)
    }

    /// A long FullHistory document: a restarted pair that kept what each side confirmed sends only
    /// the new change; a peer with a new store incarnation is sent the whole history again.
    @Test func persistedStateMeansOnlyNewChangesAfterARestartButEverythingForANewIncarnation() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        try pair.write(.replace(["entry0": .string("first")]), "audit_logs", "log", on: .aToB)
        for n in 1..<200 {
            try pair.write(.mergePatch(["entry\(n)": .string("entry \(n) of the audit log")]), "audit_logs", "log", on: .aToB)
        }
        let initial = try pair.exchange()
        #expect(try pair.b.value("audit_logs", "log")?.count == 200)
        let history = initial.documentPayloadBytes
        #expect(history > 1000)

        // Both nodes restart (same stores): one new change crosses, not the history.
        try pair.a.restart()
        try pair.b.restart()
        pair.reconnect()
        try pair.write(.mergePatch(["entry200": .string("after restart")]), "audit_logs", "log", on: .aToB)
        let resumed = try pair.exchange()
        #expect(try pair.b.value("audit_logs", "log")?.count == 201)
        #expect(resumed.documentPayloadBytes < history / 20, "resumed with \(resumed.documentPayloadBytes) of \(history) bytes")

        // Node b comes back with an empty data directory: a new incarnation, so a's record of what b
        // confirmed is void and b gets everything again.
        try pair.b.wipe()
        pair.reconnect()
        let refilled = try pair.exchange()
        #expect(try pair.b.value("audit_logs", "log")?.count == 201)
        #expect(refilled.documentPayloadBytes > history)
        #expect(try pair.a.store.metadata(DocumentRepository.metadataName(pair.b.device)) == nil)
    }

    @Test func aDeleteReachesThePeerAndAStaleReplicaDoesNotResurrectIt() throws {
        let a = try Replica("node-a")
        let b = try Replica("node-b")
        let c = try Replica("node-c")
        var ab = SyncPair(a, b)
        var ac = SyncPair(a, c)
        try ab.exchange()
        try ac.exchange()
        ab.ab.documentsChanged([try a.write(.replace(["x": .int(1)]), "beacons", "gone")])
        ac.ab.documentsChanged([Replica.key("beacons", "gone")])
        try ab.exchange()
        try ac.exchange()
        #expect(try c.value("beacons", "gone") == ["x": .int(1)])
        // a deletes while c is away; c then edits its (stale) copy.
        ab.ab.documentsChanged([try a.write(.delete, "beacons", "gone")])
        try ab.exchange()
        #expect(try b.value("beacons", "gone") == nil)
        #expect(try b.store.document(Replica.key("beacons", "gone"))?.isTombstone == true)
        ac.ba.documentsChanged([try c.write(.mergePatch(["y": .int(2)]), "beacons", "gone")])
        ac.ab.documentsChanged([Replica.key("beacons", "gone")])
        try ac.exchange()
        // LatestOnly merges per field: c's later field edit does not clear the deletion marker.
        #expect(try a.value("beacons", "gone") == nil)
        #expect(try c.value("beacons", "gone") == nil)
    }

    @Test func framesTheProtocolDoesNotAllowThrowAndChangeNothing() throws {
        let a = try Replica("node-a")
        let b = try Replica("node-b")
        var machine = SyncPair.machine(a, to: b, version: .v1)
        _ = machine.nextFrame(documents: a.repository)  // our hello
        let root = MeshMessage.root(digest: [UInt8](repeating: 0, count: 16), documents: 0, isReply: false).encoded()
        let hello = MeshMessage.hello(nodeID: "node-b", incarnation: b.store.actorID, resume: nil).encoded()
        let chunk = MeshMessage.chunk(more: false, bytes: hello).encoded()
        let part = MeshMessage.part(id: TransferID(of: root), offset: 0, total: root.count, bytes: root).encoded()

        var before = machine
        #expect(throws: MeshError.self) { try machine.receive(root, documents: a.repository) }
        #expect(throws: MeshError.self) { try machine.receive(chunk, documents: a.repository) }
        // A protocol 2 hello (with resume points) on a protocol 1 session.
        let helloV2 = MeshMessage.hello(nodeID: "node-b", incarnation: b.store.actorID, resume: []).encoded()
        #expect(throws: MeshError.self) { try machine.receive(helloV2, documents: a.repository) }
        #expect(machine == before)

        #expect(try machine.receive(hello, documents: a.repository) == .established(nodeID: "node-b"))
        before = machine
        #expect(throws: MeshError.self) { try machine.receive(hello, documents: a.repository) }
        // A chunk whose reassembled message is itself a chunk, or a hello; a part (protocol 2 only).
        #expect(throws: MeshError.self) { try machine.receive(MeshMessage.chunk(more: false, bytes: chunk).encoded(), documents: a.repository) }
        #expect(throws: MeshError.self) { try machine.receive(chunk, documents: a.repository) }
        #expect(throws: MeshError.self) { try machine.receive(part, documents: a.repository) }
        #expect(machine == before)
        // A message inside a chunked one.
        #expect(try machine.receive(MeshMessage.chunk(more: true, bytes: [1, 2]).encoded(), documents: a.repository) == .nothing)
        before = machine
        #expect(throws: MeshError.self) { try machine.receive(root, documents: a.repository) }
        #expect(machine == before)
    }

    @Test func partsTheProtocolDoesNotAllowThrowAndChangeNothing() throws {
        let a = try Replica("node-a")
        let b = try Replica("node-b")
        var machine = SyncPair.machine(a, to: b, version: .v2)
        _ = machine.nextFrame(documents: a.repository)  // our hello
        let root = MeshMessage.root(digest: [UInt8](repeating: 0, count: 16), documents: 0, isReply: false).encoded()
        let hello = MeshMessage.hello(nodeID: "node-b", incarnation: b.store.actorID, resume: []).encoded()
        let id = TransferID(of: root)
        let part = MeshMessage.part(id: id, offset: 0, total: root.count, bytes: Array(root.prefix(4))).encoded()

        var before = machine
        #expect(throws: MeshError.self) { try machine.receive(part, documents: a.repository) }
        // A protocol 1 hello (no resume points) on a protocol 2 session.
        let helloV1 = MeshMessage.hello(nodeID: "node-b", incarnation: b.store.actorID, resume: nil).encoded()
        #expect(throws: MeshError.self) { try machine.receive(helloV1, documents: a.repository) }
        #expect(machine == before)

        #expect(try machine.receive(hello, documents: a.repository) == .established(nodeID: "node-b"))
        before = machine
        // A chunk (protocol 1 only); a part that does not start at 0, is empty or overruns its total.
        #expect(throws: MeshError.self) { try machine.receive(MeshMessage.chunk(more: false, bytes: root).encoded(), documents: a.repository) }
        for bad in [
            MeshMessage.part(id: id, offset: 4, total: root.count, bytes: [1]),
            MeshMessage.part(id: id, offset: 0, total: root.count, bytes: []),
            MeshMessage.part(id: id, offset: 0, total: 2, bytes: Array(root.prefix(4))),
        ] {
            #expect(throws: MeshError.self) { try machine.receive(bad.encoded(), documents: a.repository) }
        }
        #expect(machine == before)
        // A complete message whose bytes do not match its ID is refused and nothing is held of it.
        var forged = root
        forged[forged.count - 1] ^= 1
        #expect(throws: MeshError.self) {
            try machine.receive(MeshMessage.part(id: id, offset: 0, total: forged.count, bytes: forged).encoded(), documents: a.repository)
        }
        #expect(machine.held.isEmpty)
        // A part of a transfer that continues a held one at the wrong byte drops it.
        #expect(try machine.receive(part, documents: a.repository) == .nothing)
        #expect(machine.held.byteCount == 4)
        #expect(throws: MeshError.self) {
            try machine.receive(MeshMessage.part(id: id, offset: 3, total: root.count, bytes: [1]).encoded(), documents: a.repository)
        }
        #expect(machine.held.isEmpty)
    }

    @Test func aDocumentLargerThanAFrameTravelsInChunksOnProtocol1() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"), version: .v1)
        try pair.exchange()
        let big = String(repeating: "0123456789abcdef", count: 160 * 1024)  // 2.5 MiB of text
        try pair.write(.replace(["blob": .string(big)]), "contact_reports", "big", on: .aToB)
        let traffic = try pair.exchange()
        #expect((traffic.kinds["chunk"] ?? 0) >= 3)
        #expect(traffic.kinds["part"] == nil)
        #expect(try pair.b.value("contact_reports", "big") == ["blob": .string(big)])
    }

    @Test func aDocumentLargerThanAPartTravelsInPartsOnProtocol2() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"), version: .v2)
        try pair.exchange()
        let big = String(repeating: "0123456789abcdef", count: 160 * 1024)  // 2.5 MiB of text
        try pair.write(.replace(["blob": .string(big)]), "contact_reports", "big", on: .aToB)
        let traffic = try pair.exchange()
        #expect(traffic.kinds["chunk"] == nil)
        // Every part is at most partSize: the document message crosses in ~1,280 of them.
        #expect((traffic.kinds["part"] ?? 0) >= big.utf8.count / SyncSession.StateMachine.partSize)
        #expect(traffic.partBytes >= big.utf8.count && traffic.partBytes < big.utf8.count + 64 * 1024)
        #expect(try pair.b.value("contact_reports", "big") == ["blob": .string(big)])
    }

    @Test func documentsBeyondTheCacheSyncIntact() throws {
        var pair = SyncPair(try Replica("node-a", cacheCapacity: 16), try Replica("node-b", cacheCapacity: 16))
        try pair.exchange()
        for n in 0..<300 { try pair.write(.replace(["n": .int(Int64(n))]), n % 2 == 0 ? "beacons" : "commands", "d\(n)", on: .aToB) }
        try pair.exchange()
        for n in 0..<300 {
            #expect(try pair.b.value(n % 2 == 0 ? "beacons" : "commands", "d\(n)") == ["n": .int(Int64(n))])
        }
        try expectOneRootComparison(&pair)
        let quiet = pair.tick()
        #expect(!quiet)
    }

    /// After documents moved, the next pass compares roots once (root messages only) and they agree.
    private func expectOneRootComparison(_ pair: inout SyncPair, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let offered = pair.tick()
        #expect(offered, sourceLocation: sourceLocation)
        let traffic = try pair.exchange()
        #expect(traffic.kinds.keys.sorted() == ["root"], sourceLocation: sourceLocation)
        #expect(pair.ab.agreedRoot == pair.a.repository.index.root && pair.ba.agreedRoot == pair.b.repository.index.root, sourceLocation: sourceLocation)
    }
}

/// Keys stored under the earlier, looser rule (IDs `.`, `..`, with `/`): readable locally, never
/// synced, and never a reason to refuse a peer's frame.
struct LegacyKeyTests {
    static let legacy = DocumentKey(stored: "beacons", id: ".")

    @Test func aStoredKeyFromTheEarlierRuleIsKeptButNotSynced() throws {
        let a = try Replica("node-a")
        // Written as an earlier version could: the store takes the key as given.
        let document = Document(actor: a.repository.actorID)
        try document.put(.root, "x", .int(1))
        document.commit()
        let bytes = StoredEnvelope.encode(mode: .latestOnly, digest: document.syncDigest(mode: .latestOnly), body: document.save())
        try a.store.apply([.put(Self.legacy, bytes)], origin: .local)
        try a.restart()
        #expect(a.repository.index.count == 0, "not indexed, so never offered to peers")
        #expect(try a.repository.document(Self.legacy)?.value == ["x": .int(1)], "still readable locally")
        var pair = SyncPair(a, try Replica("node-b"))
        try pair.write(.replace(["ok": .bool(true)]), "beacons", "b1", on: .aToB)
        try pair.exchange()
        #expect(try pair.b.value("beacons", "b1") == ["ok": .bool(true)])
        #expect(try pair.b.store.scan(nil).map(\.key) == [Replica.key("beacons", "b1")])
        let offered = pair.tick()
        #expect(offered)
        try pair.exchange()
        #expect(pair.ab.agreedRoot == pair.a.repository.index.root, "roots agree: the legacy key does not keep anti-entropy busy")
    }

    @Test func aPeersFrameNamingAKeyFromTheEarlierRuleIsAppliedWithoutIt() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        let key = try pair.a.write(.replace(["n": .int(1)]), "beacons", "b1")
        // A LatestOnly document's second message carries its snapshot (the first only its digest).
        var state = DocumentSyncState()
        _ = pair.a.repository.syncMessage(for: key, state: &state)
        let payload = try #require(pair.a.repository.syncMessage(for: key, state: &state))
        // As a node of the earlier version would send it: a legacy key next to a valid one.
        let frame = MeshMessage.documents([.init(key: Self.legacy, payload: payload), .init(key: key, payload: payload)]).encoded()
        #expect(try MeshMessage(decoding: frame) == .documents([.init(key: key, payload: payload)]))
        #expect(try pair.ba.receive(frame, documents: pair.b.repository) == .changed([key]))
        #expect(try pair.b.value("beacons", "b1") == ["n": .int(1)])
        #expect(try pair.b.store.document(Self.legacy) == nil)
    }
}
