import PeatCRDT
import PeatStorage
import PeatTestSupport
import PropertyBased
import Testing

@testable import PeatMesh

/// Every decoder of bytes that come from other machines (or from disk), fed valid encodings cut
/// short, with bytes flipped, and pure noise — seeded, so a failing case reproduces. Each must
/// answer with an error, never trap, and a refused frame must change nothing.
struct MeshDecoderPropertyTests {
    static let cases = 2500

    /// One valid encoding of every message kind, with realistic contents.
    static func sampleMessages() throws -> [MeshMessage] {
        let a = try Replica("node-a")
        let key = try a.write(.replace(["callsign": .string("alpha"), "lat": .double(48.1)]), "beacons", "b1")
        try a.write(.replace(["verb": .string("go")]), "commands", "c1")
        var state = DocumentSyncState()
        let payload = try #require(a.repository.syncMessage(for: key, state: &state))
        let index = a.repository.index
        let bucket = DocumentIndex.bucket(of: key)
        return [
            .hello(nodeID: "peat-mesh-1", incarnation: a.store.actorID, resume: []),
            .root(digest: index.root, documents: index.count, isReply: true),
            .groups(index.groupDigests),
            .buckets(group: UInt8(bucket / MeshMessage.groupSize), digests: index.bucketDigests(group: bucket / MeshMessage.groupSize)),
            .keys(bucket: UInt8(bucket), entries: index.entries(inBucket: bucket), isReply: false),
            .documents([.init(key: key, payload: payload), .init(key: Replica.key("commands", "c1"), payload: payload)]),
            .chunk(more: true, bytes: Array(repeating: 7, count: 40)),
        ]
    }

    @Test func meshMessagesRefuseDamagedFrames() async throws {
        let samples = try Self.sampleMessages().map { $0.encoded() }
        for sample in samples { #expect(throws: Never.self) { try MeshMessage(decoding: sample) } }
        await throwingPropertyCheck(count: Self.cases, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let (bytes, truncated) = samples.randomElement(using: &rng)!.damaged(using: &rng)
            do {
                let message = try MeshMessage(decoding: bytes)
                // Every part of a frame is required: a truncated one can never decode.
                #expect(!truncated, "a truncated frame decoded")
                // What did decode is a well-formed message: it encodes and decodes to itself.
                #expect(try MeshMessage(decoding: message.encoded()) == message)
            } catch {
                #expect((error as? MeshError)?.code == .protocolViolation)
            }
        }
    }

    @Test func persistedSyncStatesRefuseDamagedRecords() async throws {
        let a = try Replica("node-a")
        var states: [DocumentKey: [UInt8]] = [:]
        for n in 0..<6 {
            let key = try a.write(.replace(["n": .int(Int64(n))]), n % 2 == 0 ? "beacons" : "audit_logs", "d\(n)")
            var state = DocumentSyncState()
            _ = a.repository.syncMessage(for: key, state: &state)
            states[key] = state.crdt.persistentBytes()
        }
        let sample = PersistedSyncStates(incarnation: a.store.actorID, states: states).encoded()
        #expect(try PersistedSyncStates(decoding: sample).states == states)
        await throwingPropertyCheck(count: Self.cases, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let (bytes, truncated) = sample.damaged(using: &rng)
            do {
                let decoded = try PersistedSyncStates(decoding: bytes)
                #expect(!truncated, "a truncated record decoded")
                #expect(try PersistedSyncStates(decoding: decoded.encoded()) == decoded)
            } catch {
                #expect((error as? MeshError)?.code == .storage)
            }
        }
    }

    /// A damaged record in the store never stops a peer from syncing: its state starts over.
    @Test func aDamagedPersistedRecordStartsThePeersSyncOver() async throws {
        let a = try Replica("node-a")
        let b = try Replica("node-b")
        await throwingPropertyCheck(count: 200, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let noise = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            try a.store.setMetadata(DocumentRepository.metadataName(b.device), noise)
            #expect(a.repository.confirmedStates(of: b.device, incarnation: b.store.actorID).count <= 1)
        }
    }

    /// The state machine, in both phases, fed damaged frames: whatever it refuses leaves it (and the
    /// documents) exactly as they were.
    @Test(arguments: [false, true])
    func theStateMachineRefusesDamagedFramesWithoutChangingAnything(afterHello: Bool) async throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        if afterHello {
            try pair.exchange()
            try pair.write(.replace(["x": .int(1)]), "beacons", "b1", on: .aToB)
            try pair.write(.replace(["y": .int(2)]), "commands", "c1", on: .bToA)
            try pair.exchange()
        }
        let samples =
            try Self.sampleMessages().map { $0.encoded() }
            + [MeshMessage.hello(nodeID: "node-a", incarnation: pair.a.store.actorID, resume: []).encoded()]
        let machine = pair.ba
        let repository = pair.b.repository
        let store = pair.b.store
        var refused = 0
        await throwingPropertyCheck(count: Self.cases, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let (bytes, _) = samples.randomElement(using: &rng)!.damaged(using: &rng)
            var copy = machine
            let root = repository.index.root
            let stored = try store.scan(nil)
            do {
                _ = try copy.receive(bytes, documents: repository)
            } catch {
                refused += 1
                #expect(copy == machine)
                #expect(repository.index.root == root)
                #expect(try store.scan(nil) == stored)
            }
        }
        // Nearly all damaged frames are refused; a flipped byte inside a CRDT payload may still be a
        // valid message, which is then applied like any other.
        #expect(refused > Self.cases / 2)
    }

    @Test func storedEnvelopesAreRecognisedOnlyWhenWhole() async throws {
        let body = Array("saved document".utf8)
        let envelope = StoredEnvelope.encode(mode: .fullHistory, digest: [UInt8](repeating: 9, count: 16), body: body)
        #expect(StoredEnvelope.header(envelope)?.digest == [UInt8](repeating: 9, count: 16))
        await throwingPropertyCheck(count: Self.cases, input: Gen<UInt64>.value()) { seed in
            var rng = SeededRandom(seed: seed)
            let (bytes, truncated) = envelope.damaged(using: &rng)
            if let header = StoredEnvelope.header(bytes) {
                #expect(header.digest.count == 16)
                #expect(StoredEnvelope.body(bytes).count == bytes.count - StoredEnvelope.headerSize)
            } else {
                #expect(bytes.count < StoredEnvelope.headerSize || bytes[0] != StoredEnvelope.magic || bytes[1] != StoredEnvelope.version)
            }
            if truncated && bytes.count < StoredEnvelope.headerSize { #expect(StoredEnvelope.header(bytes) == nil) }
        }
    }
}
