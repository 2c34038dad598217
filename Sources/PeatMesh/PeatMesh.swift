import Logging
import PeatDiscovery
public import PeatIdentity
public import PeatStorage
public import PeatTransport
public import ServiceLifecycle
import Synchronization

/// A formation member: discovers peers, keeps authenticated sync sessions with them and keeps this
/// node's documents in sync — pushed on every change, checked by periodic anti-entropy.
///
/// Build one with `PeatMeshBuilder` and run it as a swift-service-lifecycle `Service` (or call
/// `run()`); read and write documents through it from any task. Documents are JSON objects in
/// collections; each collection syncs in the mode `Configuration.syncModes` gives it.
public final class PeatMesh: Service, Sendable {
    /// How the mesh behaves; the defaults are the design's.
    public struct Configuration: Sendable {
        /// This node's ID: its hostname or identity context, as peers and logs show it.
        public var nodeID: String
        /// Which sync mode each collection uses.
        public var syncModes = SyncModeRegistry()
        /// How often peers compare root digests (anti-entropy). Peers in sync exchange nothing.
        public var antiEntropyInterval: Duration = .seconds(5)
        /// How long a session waits after a change before sending, to batch a burst of writes.
        public var pushDelay: Duration = .milliseconds(1)
        /// Delays between redials of a discovered peer.
        public var reconnectBackoff = ReconnectBackoff()
        /// History compaction of LatestOnly collections.
        public var compaction = CompactionConfiguration()
        /// How often WindowedHistory collections drop history older than their window.
        public var historyWindowInterval: Duration = .seconds(60)
        /// Documents kept decoded in memory; others are loaded from the store on use.
        public var documentCacheSize = 2048
        /// Discovery sources whose node IDs are the peers' identity contexts: a peer found by one of
        /// them must present the device key derived from the formation secret and its node ID.
        public var identityCheckedSources: Set<String> = []

        public init(nodeID: String) {
            self.nodeID = nodeID
        }
    }

    /// This node's ID.
    public let nodeID: String
    /// This node's device ID (from its device key).
    public let deviceID: DeviceID
    public let configuration: Configuration
    /// The document store the mesh keeps documents in.
    public let store: any DocumentStore

    let engine: DocumentEngine
    let transport: any SyncTransport & Service
    let discovery: (any DiscoveryStrategy)?
    let waitUntilListening: (@Sendable () async throws -> Void)?
    let peerTable = PeerTable()
    let logger: Logger
    let broadcaster = EventBroadcaster()
    /// Sync traffic counters (payload bytes of the mesh protocol).
    public let traffic = MeshTraffic()
    /// Derives a peer's device ID from its node ID (the formation secret stays inside).
    let deriveDevice: @Sendable (String) -> DeviceID
    private let status = Mutex(Status())

    struct Status {
        var indexed = false
        var listening = false
        var discoveryRunning = false
        var stopped = false
    }

    init(
        configuration: Configuration, deviceID: DeviceID, store: any DocumentStore, transport: any SyncTransport & Service,
        discovery: (any DiscoveryStrategy)?, waitUntilListening: (@Sendable () async throws -> Void)?,
        deriveDevice: @escaping @Sendable (String) -> DeviceID, logger: Logger
    ) throws(MeshError) {
        self.nodeID = configuration.nodeID
        self.deviceID = deviceID
        self.configuration = configuration
        self.store = store
        self.transport = transport
        self.discovery = discovery
        self.waitUntilListening = waitUntilListening
        self.deriveDevice = deriveDevice
        self.logger = logger
        let broadcaster = broadcaster
        engine = try DocumentEngine(
            store: store, registry: configuration.syncModes, cacheCapacity: configuration.documentCacheSize, logger: logger,
            emit: { broadcaster.yield($0) })
    }

    // MARK: State

    /// Whether the document index is built and the transport listens: the mesh can sync.
    public var isSyncReady: Bool { status.withLock { $0.indexed && $0.listening } }
    /// Whether the discovery strategy is running (false when the mesh has none).
    public var isDiscoveryRunning: Bool { status.withLock { $0.discoveryRunning } }
    /// Whether the transport is listening for peers.
    public var isListening: Bool { status.withLock { $0.listening } }
    /// How many peers discovery currently reports.
    public var discoveredPeerCount: Int { peerTable.discoveredCount }

    /// Waits until the transport listens (returns at once for transports without a listener).
    /// - Throws: The transport's error when it cannot listen.
    public func waitUntilListening() async throws {
        try await waitUntilListening?()
    }

    /// Connected peers first, then discovered peers without a session.
    public func peers() -> [MeshPeer] {
        peerTable.peers()
    }

    /// Mesh events from now on; iterating is subscribing, ending the iteration unsubscribes.
    /// - Parameter bufferSize: Events that may wait unread before the oldest are dropped.
    public func events(bufferSize: Int = 1024) -> AsyncStream<MeshEvent> {
        broadcaster.subscribe(bufferSize: bufferSize)
    }

    // MARK: Running

    /// Runs the mesh until graceful shutdown: the transport, discovery, the peer connector, inbound
    /// sessions and the maintenance loop (compaction, history windows). Sync state is saved on the way out.
    /// - Throws: `MeshError` when the store cannot be indexed; the transport's or discovery's errors.
    public func run() async throws {
        try await engine.buildIndex()
        status.withLock { $0.indexed = true }
        let documents = await engine.documentCount
        logger.info("Mesh started node_id=\(nodeID) device_id=\(deviceID.hex)", metadata: ["documents": "\(documents)"])
        defer { status.withLock { $0.stopped = true } }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.transport.run() }
            group.addTask { await self.acceptInbound() }
            group.addTask {
                if let waitUntilListening = self.waitUntilListening {
                    do { try await waitUntilListening() } catch { return }  // the transport's run reports it
                }
                self.status.withLock { $0.listening = true }
                self.logger.info("Sync stack ready", metadata: ["anti_entropy_secs": "\(self.configuration.antiEntropyInterval.components.seconds)"])
            }
            if let discovery = self.discovery {
                group.addTask {
                    self.status.withLock { $0.discoveryRunning = true }
                    defer { self.status.withLock { $0.discoveryRunning = false } }
                    try await discovery.run()
                }
                group.addTask {
                    await cancelWhenGracefulShutdown { await self.connect(discovery.events) }
                }
            }
            group.addTask {
                await cancelWhenGracefulShutdown { await self.maintain() }
            }
        }
        await engine.persistAll()
        broadcaster.finish()
    }

    /// Runs a session for every connection peers open to this node.
    private func acceptInbound() async {
        await withDiscardingTaskGroup { sessions in
            for await connection in transport.inboundConnections {
                sessions.addTask { await self.runSession(connection, addresses: [Self.address(connection.remoteAddress)]) }
            }
        }
    }

    /// `ip:port` from NIO's `[IPv4]host/ip:port` form.
    static func address(_ remote: String) -> String {
        guard let slash = remote.lastIndex(of: "/") else { return remote }
        return String(remote[remote.index(after: slash)...])
    }

    /// Runs the sync protocol over one authenticated connection until it ends.
    func runSession(_ connection: any SyncConnection, addresses: [String]) async {
        let device = connection.peer.deviceID
        let sessionID = peerTable.open(connection, addresses: addresses)
        let peerTable = peerTable
        let logger = logger
        let broadcaster = broadcaster
        let session = SyncSession(
            connection: connection, engine: engine, localNodeID: nodeID, incarnation: store.actorID,
            antiEntropyInterval: configuration.antiEntropyInterval, pushDelay: configuration.pushDelay, traffic: traffic
        ) { nodeID in
            guard let peer = peerTable.hello(device, session: sessionID, nodeID: nodeID) else { return }
            logger.info("Peer connected peer=\(peer.id) device_id=\(device.hex) addresses=[\(peer.addresses.joined(separator: ", "))]")
            broadcaster.yield(.peerConnected(peer))
        }
        let failure = await session.run()
        await connection.close()
        guard let peer = peerTable.close(device, session: sessionID) else { return }
        let reason = Self.reason(failure)
        logger.info("Peer disconnected peer=\(peer.id) device_id=\(device.hex) reason=\(reason)")
        broadcaster.yield(.peerDisconnected(peer, reason: reason))
    }

    static func reason(_ failure: (any Error)?) -> String {
        switch failure {
        case nil: "closed"
        case let error as TransportError: "\(error.code)"
        case let error as MeshError: "\(error.code): \(error.message)"
        case is CancellationError: "shutdown"
        case let error?: "\(error)"
        }
    }
}

/// Fans mesh events out to every subscriber.
final class EventBroadcaster: Sendable {
    private let subscribers = Mutex<(next: Int, continuations: [Int: AsyncStream<MeshEvent>.Continuation], finished: Bool)>((0, [:], false))

    func subscribe(bufferSize: Int) -> AsyncStream<MeshEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: MeshEvent.self, bufferingPolicy: .bufferingNewest(max(bufferSize, 1)))
        let id: Int? = subscribers.withLock { state in
            guard !state.finished else { return nil }
            state.next += 1
            state.continuations[state.next] = continuation
            return state.next
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ event: MeshEvent) {
        let continuations = subscribers.withLock { Array($0.continuations.values) }
        for continuation in continuations { continuation.yield(event) }
    }

    func finish() {
        let continuations = subscribers.withLock { state in
            state.finished = true
            defer { state.continuations = [:] }
            return Array(state.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
