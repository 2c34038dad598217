import Logging
import PeatCRDT
import PeatDiscovery
import PeatIdentity
import PeatStorage
import PeatTransport

/// Where documents and peers meet: owns the document repository and the peer registry (with every
/// session's sync state machine), runs each session's events against the repository, and passes
/// every change on to the other sessions.
///
/// One actor, so a document and the sync states that describe it never change concurrently; the
/// repository, the registry and the machines are plain values it owns. Sessions only move frames.
actor SyncCoordinator {
    typealias SessionID = PeerRegistry.SessionID

    let repository: DocumentRepository
    private var registry = PeerRegistry()
    private let directory: PeerDirectory
    private let broadcaster: EventBroadcaster
    private let logger: Logger
    private let nodeID: String
    /// What peers sent of large messages in sessions that ended, for their next session to resume.
    private var heldTransfers: [DeviceID: HeldTransfers] = [:]
    /// Bound on `heldTransfers` over all peers.
    static let maximumHeldBytes = 128 * 1024 * 1024

    init(repository: DocumentRepository, nodeID: String, directory: PeerDirectory, broadcaster: EventBroadcaster, logger: Logger) {
        self.repository = repository
        self.nodeID = nodeID
        self.directory = directory
        self.broadcaster = broadcaster
        self.logger = logger
    }

    // MARK: Documents

    func buildIndex() throws(MeshError) {
        try repository.buildIndex()
    }

    var documentCount: Int { repository.documentCount }

    func document(_ key: DocumentKey) throws(MeshError) -> MeshDocument? {
        try repository.document(key)
    }

    func list(_ collection: String, after cursor: String?, limit: Int) throws(MeshError) -> MeshDocumentPage {
        try repository.list(collection, after: cursor, limit: limit)
    }

    func apply(_ edit: MeshEdit, to key: DocumentKey, ifVersion: UInt64?) throws(MeshError) -> DocumentRepository.LocalWrite {
        let write = try repository.apply(edit, to: key, ifVersion: ifVersion)
        if write.changed { pass([key], except: nil) }
        return write
    }

    func update(_ key: DocumentKey, _ body: @Sendable (Document) throws -> Void) throws(MeshError) -> MeshDocument? {
        let result = try repository.update(key, body)
        if result.changed { pass([key], except: nil) }
        return result.document
    }

    func compact(_ collection: String, largerThan threshold: Int) -> (documents: Int, before: Int, after: Int) {
        let result = repository.compact(collection, largerThan: threshold)
        pass(result.compacted, except: nil)
        return (result.compacted.count, result.before, result.after)
    }

    func dropHistory(_ collection: String, olderThan cutoff: Int64) -> (documents: Int, changes: Int) {
        let result = repository.dropHistory(collection, olderThan: cutoff)
        pass(result.changed, except: nil)
        return (result.changed.count, result.changes)
    }

    /// Queues changed documents for every session but `excluded` (the peer they came from hears
    /// from its own session).
    private func pass(_ keys: [DocumentKey], except excluded: SessionID?) {
        guard !keys.isEmpty else { return }
        registry.forEachSession(except: excluded) { session in
            session.machine.documentsChanged(keys)
            session.doorbell.yield()
        }
    }

    // MARK: Sessions

    /// Registers a session over an authenticated connection; its machine sends our hello first.
    func open(_ connection: any SyncConnection, addresses: [String], doorbell: AsyncStream<Void>.Continuation) -> SessionID {
        let device = connection.peer.deviceID
        if var replaced = registry.peers[device]?.session {
            // The transport closed the replaced connection; its session ends without a word (first,
            // so that what it held of the peer's transfers goes to the new one).
            saveEnded(&replaced.machine)
        }
        let machine = SyncSession.StateMachine(
            peer: device, localNodeID: nodeID, incarnation: repository.store.actorID, version: connection.protocolVersion,
            held: heldTransfers.removeValue(forKey: device) ?? HeldTransfers())
        let (id, replaced) = registry.open(connection, addresses: addresses, machine: machine, doorbell: doorbell)
        replaced?.doorbell.finish()
        publish()
        doorbell.yield()
        return id
    }

    /// Handles one frame the peer of session `id` sent.
    /// - Throws: `MeshError` for a frame the protocol does not allow (`.protocolViolation`), or when
    ///   the session is no longer open (`.closed`): the session then ends.
    func receive(_ frame: [UInt8], on id: SessionID) throws(MeshError) {
        let repository = repository
        let outcome = try registry.withSession(id) { (session: inout PeerRegistry.Session) throws(MeshError) in
            defer { session.doorbell.yield() }
            return try session.machine.receive(frame, documents: repository)
        }
        switch outcome {
        case nil:
            throw MeshError(code: .closed, message: "the session was replaced or ended")
        case .nothing?:
            break
        case .established(let peerNodeID)?:
            let session = registry.established(id, nodeID: peerNodeID)
            publish()
            if let session {
                let peer = Self.peer(session)
                logger.info(
                    "Peer connected peer=\(peer.id) device_id=\(session.connection.peer.deviceID.hex) addresses=[\(peer.addresses.joined(separator: ", "))] path=\(session.connection.path)"
                )
                broadcaster.yield(.peerConnected(peer))
            }
        case .changed(let keys)?:
            pass(keys, except: id)
        }
    }

    /// The next frame for session `id`; nil when there is nothing to send (or it ended).
    func nextFrame(_ id: SessionID) -> [UInt8]? {
        let repository = repository
        return registry.withSession(id) { $0.machine.nextFrame(documents: repository) } ?? nil
    }

    /// The periodic anti-entropy pass of session `id`; with `persist`, also saves what the peer confirmed.
    func tick(_ id: SessionID, persist: Bool) {
        let index = repository.index
        registry.withSession(id) { session in
            if session.machine.antiEntropyTick(index: index) { session.doorbell.yield() }
            if persist { saveConfirmed(&session.machine) }
        }
    }

    /// Session `id` ended (`failure` says why): saves its state and reports the disconnection.
    func close(_ id: SessionID, failure: (any Error)?) {
        guard var session = registry.close(id) else { return }
        saveEnded(&session.machine)
        session.doorbell.finish()
        publish()
        report(disconnected: session, reason: PeatMesh.reason(failure))
    }

    /// Saves every open session's state (at shutdown).
    func persistAll() {
        registry.forEachSession(except: nil) { saveConfirmed(&$0.machine) }
    }

    /// Saves what the peer confirmed (the session goes on).
    private func saveConfirmed(_ machine: inout SyncSession.StateMachine) {
        if let states = machine.takeUnsavedStates() { repository.saveConfirmedStates(states, of: machine.peer) }
    }

    /// A session ended: saves what the peer confirmed, and keeps what it sent of unfinished transfers
    /// for its next session (within `maximumHeldBytes` over all peers: the largest other peer's go first).
    private func saveEnded(_ machine: inout SyncSession.StateMachine) {
        saveConfirmed(&machine)
        let held = machine.takeHeldTransfers()
        guard !held.isEmpty else { return }
        heldTransfers[machine.peer] = held
        var total = heldTransfers.values.reduce(0) { $0 + $1.byteCount }
        while total > Self.maximumHeldBytes,
            let largest = heldTransfers.filter({ $0.key != machine.peer }).max(by: { $0.value.byteCount < $1.value.byteCount })
        {
            heldTransfers[largest.key] = nil
            total -= largest.value.byteCount
        }
    }

    private func report(disconnected session: PeerRegistry.Session, reason: String) {
        let peer = Self.peer(session)
        logger.info("Peer disconnected peer=\(peer.id) device_id=\(session.connection.peer.deviceID.hex) reason=\(reason)")
        broadcaster.yield(.peerDisconnected(peer, reason: reason))
    }

    private static func peer(_ session: PeerRegistry.Session) -> MeshPeer {
        let device = session.connection.peer.deviceID.hex
        return MeshPeer(
            id: session.machine.peerNodeID ?? device, deviceID: device, connected: true, state: PeerRegistry.DialState.connected.rawValue,
            roundTripTime: session.connection.roundTripTime, addresses: session.addresses, path: session.connection.path)
    }

    private func publish() {
        directory.publish(registry.listing(), discovered: registry.discoveredCount)
    }

    // MARK: Discovery and dialling

    /// Records a found or updated peer; returns a ticket for a new dial loop when it is new.
    func discovered(_ info: PeerInfo, expected: DeviceID?) -> PeerRegistry.DialTicket? {
        defer { publish() }
        return registry.discover(info, expected: expected)
    }

    /// Forgets a peer discovery lost and ends its session at once; returns the connection to abort.
    func lost(_ nodeID: String) -> (any SyncConnection)? {
        defer { publish() }
        guard var session = registry.lose(nodeID) else { return nil }
        saveEnded(&session.machine)
        session.doorbell.finish()
        report(disconnected: session, reason: "lost")
        return session.connection
    }

    /// What the dial loop of `nodeID` should do next (marking the peer as being dialled).
    func dialDecision(_ nodeID: String, generation: UInt64) -> PeerRegistry.DialDecision {
        let decision = registry.dialDecision(nodeID, generation: generation)
        if case .dial = decision {
            registry.setDial(nodeID, generation: generation, .connecting)
            publish()
        }
        return decision
    }

    /// A dial of `nodeID` reached `device` (or found it already connected).
    func dialed(_ nodeID: String, generation: UInt64, device: DeviceID?) {
        if let device { registry.resolve(nodeID, generation: generation, to: device) }
        publish()
    }

    /// The direct addresses discovery knows for `nodeID` (nil for a stale dial loop).
    func directAddresses(_ nodeID: String, generation: UInt64) -> [PeerAddress]? {
        registry.directAddresses(nodeID, generation: generation)
    }

    /// No address of `nodeID` answered; it is dialled again after a backoff.
    func dialFailed(_ nodeID: String, generation: UInt64) {
        registry.setDial(nodeID, generation: generation, .backoff)
        publish()
    }
}
