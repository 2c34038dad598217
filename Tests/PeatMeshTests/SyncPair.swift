import Logging
import PeatCRDT
import PeatIdentity
import PeatStorage

@testable import PeatMesh

/// A node's documents for state machine tests: a repository over an in-memory store.
final class Replica {
    static let secret = Array("state-machine-tests-formation-secret".utf8)
    static let quiet = Logger(label: "peat.test", factory: { _ in SwiftLogNoOpLogHandler() })

    let nodeID: String
    let device: DeviceID
    var store: InMemoryDocumentStore
    var repository: DocumentRepository

    init(_ nodeID: String, modes: SyncModeRegistry = SyncModeRegistry(), cacheCapacity: Int = 64) throws {
        self.nodeID = nodeID
        device = DeviceKeypair.fromSeed(Self.secret, context: nodeID).deviceID
        store = InMemoryDocumentStore()
        repository = try DocumentRepository(store: store, modes: modes, cacheCapacity: cacheCapacity, logger: Self.quiet)
        try repository.buildIndex()
    }

    /// The same node restarted on the same store: a new repository, nothing cached.
    func restart() throws {
        repository = try DocumentRepository(store: store, modes: repository.modes, cacheCapacity: repository.cache.capacity, logger: Self.quiet)
        try repository.buildIndex()
    }

    /// The same node restarted with an empty data directory: a new store incarnation.
    func wipe() throws {
        store = InMemoryDocumentStore()
        try restart()
    }

    static func key(_ collection: String, _ id: String) -> DocumentKey {
        try! DocumentKey(collection: collection, id: id)
    }

    @discardableResult
    func write(_ edit: MeshEdit, _ collection: String, _ id: String) throws -> DocumentKey {
        let key = Self.key(collection, id)
        _ = try repository.apply(edit, to: key, ifVersion: nil)
        return key
    }

    func value(_ collection: String, _ id: String) throws -> [String: JSON]? {
        try repository.document(Self.key(collection, id))?.value
    }
}

/// Two replicas and the sync state machines between them, with no network: `exchange` moves frames
/// by hand (and can lose some), so every count is exact.
struct SyncPair {
    enum Direction: Sendable { case aToB, bToA }

    /// What crossed during one exchange.
    struct Traffic: Equatable {
        var frames = 0
        var bytes = 0
        /// Frames by message kind (`hello`, `root`, `groups`, `buckets`, `keys`, `documents`, `chunk`).
        var kinds: [String: Int] = [:]
        /// Bytes of CRDT sync messages inside `documents` frames.
        var documentPayloadBytes = 0
        var dropped = 0
    }

    let a: Replica
    let b: Replica
    var ab: SyncSession.StateMachine
    var ba: SyncSession.StateMachine

    init(_ a: Replica, _ b: Replica) {
        self.a = a
        self.b = b
        ab = Self.machine(a, to: b)
        ba = Self.machine(b, to: a)
    }

    static func machine(_ local: Replica, to peer: Replica) -> SyncSession.StateMachine {
        SyncSession.StateMachine(peer: peer.device, localNodeID: local.nodeID, incarnation: local.store.actorID)
    }

    /// A new connection between the same replicas: what each side's session confirmed is saved first,
    /// as the coordinator does when a session ends.
    mutating func reconnect() {
        for (machine, replica) in [(ab, a), (ba, b)] {
            var machine = machine
            if let states = machine.takeUnsavedStates() { replica.repository.saveConfirmedStates(states, of: machine.peer) }
        }
        ab = Self.machine(a, to: b)
        ba = Self.machine(b, to: a)
    }

    /// A local write on one side, which the coordinator would pass to that side's machine.
    mutating func write(_ edit: MeshEdit, _ collection: String, _ id: String, on side: Direction) throws {
        switch side {
        case .aToB: ab.documentsChanged([try a.write(edit, collection, id)])
        case .bToA: ba.documentsChanged([try b.write(edit, collection, id)])
        }
    }

    /// One anti-entropy pass on both sides; true when either side offered its root.
    mutating func tick() -> Bool {
        let fromA = ab.antiEntropyTick(index: a.repository.index)
        let fromB = ba.antiEntropyTick(index: b.repository.index)
        return fromA || fromB
    }

    /// Moves frames both ways, one at a time, until neither side has anything to send. `drop` loses
    /// a frame on the wire (the receiver never sees it).
    @discardableResult
    mutating func exchange(dropping drop: (Direction, MeshMessage) -> Bool = { _, _ in false }) throws -> Traffic {
        var traffic = Traffic()
        for _ in 0..<100_000 {
            var moved = false
            if let frame = ab.nextFrame(documents: a.repository) {
                moved = true
                try deliver(frame, .aToB, &traffic, drop)
            }
            if let frame = ba.nextFrame(documents: b.repository) {
                moved = true
                try deliver(frame, .bToA, &traffic, drop)
            }
            if !moved { return traffic }
        }
        throw MeshError(code: .protocolViolation, message: "the exchange did not settle")
    }

    private mutating func deliver(_ frame: [UInt8], _ direction: Direction, _ traffic: inout Traffic, _ drop: (Direction, MeshMessage) -> Bool) throws {
        let message = try MeshMessage(decoding: frame)
        traffic.frames += 1
        traffic.bytes += frame.count
        traffic.kinds[Self.kind(message), default: 0] += 1
        if case .documents(let messages) = message { traffic.documentPayloadBytes += messages.reduce(0) { $0 + $1.payload.count } }
        if drop(direction, message) {
            traffic.dropped += 1
            return
        }
        switch direction {
        case .aToB: _ = try ba.receive(frame, documents: b.repository)
        case .bToA: _ = try ab.receive(frame, documents: a.repository)
        }
    }

    static func kind(_ message: MeshMessage) -> String {
        switch message {
        case .hello: "hello"
        case .root: "root"
        case .groups: "groups"
        case .buckets: "buckets"
        case .keys: "keys"
        case .documents: "documents"
        case .chunk: "chunk"
        }
    }
}
