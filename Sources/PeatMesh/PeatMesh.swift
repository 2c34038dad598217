import Logging
import PeatDiscovery
public import PeatIdentity
import PeatStorage
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
        /// Which priority each collection's changes travel at.
        public var syncPriorities = SyncPriorityRegistry()
        /// Each session sends at most this many bytes per second (frames and TLS records; TCP/IP
        /// headers not counted), higher priorities first; nil: no limit.
        public var peerRateLimit: Int?
        /// How often peers compare root digests (anti-entropy). Peers in sync exchange nothing.
        public var antiEntropyInterval: Duration = .seconds(5)
        /// How long a session waits after a change before sending, to batch a burst of writes.
        public var pushDelay: Duration = .milliseconds(1)
        /// Delays between redials of a discovered peer: capped at 5 s, so a link that comes back is
        /// used again within seconds.
        public var reconnectBackoff = ReconnectBackoff(initial: .milliseconds(200), maximum: .seconds(5))
        /// While a peer is reached through a relay, how often its direct addresses are tried again
        /// (the session moves to the first that works).
        public var directProbeBackoff = ReconnectBackoff(initial: .seconds(5), maximum: .seconds(60))
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
    /// Sync traffic counters (payload bytes of the mesh protocol).
    public let traffic: MeshTraffic

    let coordinator: SyncCoordinator
    let store: any DocumentStore
    let transport: any SyncTransport & Service
    let discovery: (any DiscoveryStrategy)?
    let waitUntilListening: (@Sendable () async throws -> Void)?
    let clock: any Clock<Duration>
    let logger: Logger
    let broadcaster = EventBroadcaster()
    let directory = PeerDirectory()
    /// Derives a peer's device ID from its node ID (the formation secret stays inside).
    let deriveDevice: @Sendable (String) -> DeviceID
    private let status = Mutex(Status())

    struct Status {
        var indexed = false
        var listening = false
        var discoveryRunning = false
    }

    struct Parts {
        var store: any DocumentStore
        var transport: any SyncTransport & Service
        var discovery: (any DiscoveryStrategy)?
        var waitUntilListening: (@Sendable () async throws -> Void)?
        var deriveDevice: @Sendable (String) -> DeviceID
        var clock: any Clock<Duration>
        var traffic: MeshTraffic
        var logger: Logger
    }

    init(configuration: Configuration, deviceID: DeviceID, parts: Parts) throws(MeshError) {
        if let rate = configuration.peerRateLimit, rate < 1 {
            throw MeshError(code: .invalidConfiguration, message: "the per-peer rate limit must be at least 1 byte per second, not \(rate)")
        }
        self.nodeID = configuration.nodeID
        self.deviceID = deviceID
        self.configuration = configuration
        self.store = parts.store
        self.transport = parts.transport
        self.discovery = parts.discovery
        self.waitUntilListening = parts.waitUntilListening
        self.deriveDevice = parts.deriveDevice
        self.clock = parts.clock
        self.traffic = parts.traffic
        self.logger = parts.logger
        let repository = try DocumentRepository(
            store: parts.store, modes: configuration.syncModes, priorities: configuration.syncPriorities,
            cacheCapacity: configuration.documentCacheSize, logger: parts.logger)
        coordinator = SyncCoordinator(
            repository: repository, nodeID: configuration.nodeID, directory: directory, broadcaster: broadcaster, logger: parts.logger)
    }

    // MARK: State

    /// Whether the document index is built and the transport listens: the mesh can sync.
    public var isSyncReady: Bool { status.withLock { $0.indexed && $0.listening } }
    /// Whether the discovery strategy is running (false when the mesh has none).
    public var isDiscoveryRunning: Bool { status.withLock { $0.discoveryRunning } }
    /// Whether the transport is listening for peers.
    public var isListening: Bool { status.withLock { $0.listening } }
    /// How many peers discovery currently reports.
    public var discoveredPeerCount: Int { directory.discoveredCount }

    /// Waits until the transport listens (returns at once for transports without a listener).
    /// - Throws: The transport's error when it cannot listen.
    public func waitUntilListening() async throws {
        try await waitUntilListening?()
    }

    /// Connected peers first, then discovered peers without a session.
    public func peers() -> [MeshPeer] {
        directory.peers
    }

    /// Mesh events from now on; iterating is subscribing, ending the iteration unsubscribes.
    /// Document changes are reported while the mesh runs (they come from the store's change feed).
    /// - Parameter bufferSize: Events that may wait unread before the oldest are dropped.
    public func events(bufferSize: Int = 1024) -> AsyncStream<MeshEvent> {
        broadcaster.subscribe(bufferSize: bufferSize)
    }

    // MARK: Running

    /// Runs the mesh until graceful shutdown: the transport, discovery, the peer connector, inbound
    /// sessions and the maintenance loop (compaction, history windows). Sync state is saved on the way out.
    /// - Throws: `MeshError` when the store cannot be indexed; the transport's or discovery's errors.
    public func run() async throws {
        try await coordinator.buildIndex()
        status.withLock { $0.indexed = true }
        let documents = await coordinator.documentCount
        logger.info("Mesh started node_id=\(nodeID) device_id=\(deviceID.hex)", metadata: ["documents": "\(documents)"])
        // Subscribed before anything runs, so no committed change is missed.
        let changes = store.changes(bufferSize: 4096)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.transport.run() }
            group.addTask { await self.acceptInbound() }
            group.addTask {
                if let waitUntilListening = self.waitUntilListening {
                    do { try await waitUntilListening() } catch { return }  // the transport's run reports it
                }
                self.status.withLock { $0.listening = true }
                self.logger.info("Sync stack ready", metadata: ["sync.anti_entropy_secs": "\(self.configuration.antiEntropyInterval.components.seconds)"])
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
            group.addTask {
                await cancelWhenGracefulShutdown { await self.report(changes) }
            }
        }
        await coordinator.persistAll()
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

    /// Reports the store's committed changes as mesh events.
    private func report(_ changes: AsyncStream<StoreEvent>) async {
        for await event in changes {
            guard case .changed(let change) = event else {
                logger.debug("Some document change events were dropped: a subscriber fell behind")
                continue
            }
            let origin: MeshChangeOrigin =
                switch change.origin {
                case .local: .local
                case .remote(let peer): .peer(peer)
                }
            broadcaster.yield(.documentChanged(change.key, deleted: change.kind == .delete, origin: origin))
        }
    }

    /// `ip:port` from NIO's `[IPv4]host/ip:port` form.
    static func address(_ remote: String) -> String {
        guard let slash = remote.lastIndex(of: "/") else { return remote }
        return String(remote[remote.index(after: slash)...])
    }

    /// Runs the sync protocol over one authenticated connection until it ends.
    func runSession(_ connection: any SyncConnection, addresses: [String]) async {
        let timing = SyncSession.Timing(
            antiEntropyInterval: configuration.antiEntropyInterval, pushDelay: configuration.pushDelay, clock: clock,
            rateLimit: configuration.peerRateLimit)
        let session = SyncSession(connection: connection, coordinator: coordinator, timing: timing, traffic: traffic)
        _ = await session.run(addresses: addresses)
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
