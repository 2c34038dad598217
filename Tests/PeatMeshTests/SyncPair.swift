import Logging
import PeatCRDT
import PeatIdentity
import PeatStorage
import PeatTransport

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
    enum Direction: Hashable, Sendable { case aToB, bToA }

    /// What crossed during one exchange.
    struct Traffic: Equatable {
        var frames = 0
        var bytes = 0
        /// Frames by message kind (`hello`, `root`, `groups`, `buckets`, `keys`, `documents`, `chunk`, `part`).
        var kinds: [String: Int] = [:]
        /// Bytes of CRDT sync messages inside `documents` frames, plus the bytes of `part` frames
        /// (large document messages travel in parts).
        var documentPayloadBytes = 0
        /// Bytes carried by `part` frames.
        var partBytes = 0
        var dropped = 0
        /// Document messages (in `documents` frames) per direction and document.
        var documentMessages: [Direction: [DocumentKey: Int]] = [:]
    }

    let a: Replica
    let b: Replica
    /// The protocol version both sides negotiated.
    let version: SyncProtocolVersion
    var ab: SyncSession.StateMachine
    var ba: SyncSession.StateMachine

    init(_ a: Replica, _ b: Replica, version: SyncProtocolVersion = .current) {
        self.a = a
        self.b = b
        self.version = version
        ab = Self.machine(a, to: b, version: version)
        ba = Self.machine(b, to: a, version: version)
    }

    static func machine(
        _ local: Replica, to peer: Replica, version: SyncProtocolVersion = .current, held: HeldTransfers = HeldTransfers()
    ) -> SyncSession.StateMachine {
        SyncSession.StateMachine(peer: peer.device, localNodeID: local.nodeID, incarnation: local.store.actorID, version: version, held: held)
    }

    /// A new connection between the same replicas: what each side's session confirmed is saved first,
    /// and (unless `keepingTransfers` is false, as after a restart) what each holds of the other's
    /// unfinished transfers is handed to its next session — as the coordinator does when a session ends.
    mutating func reconnect(keepingTransfers: Bool = true) {
        var held: [HeldTransfers] = []
        for (machine, replica) in [(ab, a), (ba, b)] {
            var machine = machine
            if let states = machine.takeUnsavedStates() { replica.repository.saveConfirmedStates(states, of: machine.peer) }
            held.append(keepingTransfers ? machine.takeHeldTransfers() : HeldTransfers())
        }
        ab = Self.machine(a, to: b, version: version, held: held[0])
        ba = Self.machine(b, to: a, version: version, held: held[1])
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

    /// Moves frames both ways, one at a time, until neither side has anything to send (or, with
    /// `limit`, until that many frames moved: the connection is cut there). `drop` loses a frame on
    /// the wire (the receiver never sees it).
    @discardableResult
    mutating func exchange(limit: Int = .max, dropping drop: (Direction, MeshMessage) -> Bool = { _, _ in false }) throws -> Traffic {
        var traffic = Traffic()
        for _ in 0..<100_000 {
            var moved = false
            for direction in [Direction.aToB, .bToA] where traffic.frames < limit {
                if let frame = nextFrame(direction) {
                    moved = true
                    try deliver(frame, direction, &traffic, drop)
                }
            }
            if !moved || traffic.frames >= limit { return traffic }
        }
        throw MeshError(code: .protocolViolation, message: "the exchange did not settle")
    }

    /// The next frame one side's machine would write.
    mutating func nextFrame(_ direction: Direction) -> [UInt8]? {
        switch direction {
        case .aToB: ab.nextFrame(documents: a.repository)
        case .bToA: ba.nextFrame(documents: b.repository)
        }
    }

    private mutating func deliver(_ frame: [UInt8], _ direction: Direction, _ traffic: inout Traffic, _ drop: (Direction, MeshMessage) -> Bool) throws {
        let message = try MeshMessage(decoding: frame)
        traffic.frames += 1
        traffic.bytes += frame.count
        traffic.kinds[Self.kind(message), default: 0] += 1
        if case .documents(let messages) = message {
            traffic.documentPayloadBytes += messages.reduce(0) { $0 + $1.payload.count }
            for message in messages { traffic.documentMessages[direction, default: [:]][message.key, default: 0] += 1 }
        }
        if case .part(_, _, _, let bytes) = message {
            traffic.partBytes += bytes.count
            traffic.documentPayloadBytes += bytes.count
        }
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
        case .part: "part"
        }
    }
}
