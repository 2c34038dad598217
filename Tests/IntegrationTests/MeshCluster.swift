import Foundation
import Logging
import Metrics
import PeatCRDT
import PeatDiscovery
import PeatIdentity
import PeatMesh
import PeatStorage
import PeatTestSupport
import PeatTransport
import ServiceLifecycle
import Synchronization
import Testing

/// N in-process mesh nodes with LMDB stores in a temporary directory and real TLS, each listening on
/// its own loopback address 127.20.<cluster>.<n> on one port, found through static discovery.
final class MeshCluster: @unchecked Sendable {
    // @unchecked: tests drive the cluster from one task at a time.
    struct Node {
        let index: Int
        var mesh: PeatMesh
        var store: LMDBDocumentStore
        var group: ServiceGroup
        var task: Task<Void, any Error>
    }

    static let port = 11204
    let subnet: Int
    let size: Int
    let directory: URL
    var secret: FormationSecret
    var nodes: [Node?]
    var antiEntropy: Duration
    var compaction: CompactionConfiguration
    var cacheSize: Int
    /// The nodes' timers (anti-entropy, redial backoff, push delay); a test's own clock moves only
    /// when the test advances it.
    let clock: (any Clock<Duration>)?
    /// Where each node's metrics go (by default swift-metrics' global factory).
    let metrics: @Sendable (Int) -> (any MetricsFactory)?
    /// Each node's site: a peer on another site is listed at an address nothing answers on (as if
    /// there were no route), so only `relay` connects them. nil: one site.
    let sites: [Int]?
    /// The relay every node keeps a connection to.
    let relay: RelayURL?
    /// The port a node lists cross-site peers at (nothing listens there unless a test puts a proxy
    /// there, which makes the direct path appear).
    let crossSitePort: Int

    init(
        size: Int, secret: FormationSecret = .generate(), antiEntropy: Duration = .seconds(5), compaction: CompactionConfiguration = .init(),
        cacheSize: Int = 2048, clock: (any Clock<Duration>)? = nil, metrics: @escaping @Sendable (Int) -> (any MetricsFactory)? = { _ in nil },
        sites: [Int]? = nil, relay: RelayURL? = nil, crossSitePort: Int = 9
    ) async throws {
        self.size = size
        self.sites = sites
        self.relay = relay
        self.crossSitePort = crossSitePort
        self.metrics = metrics
        self.clock = clock
        self.cacheSize = cacheSize
        self.secret = secret
        self.antiEntropy = antiEntropy
        self.compaction = compaction
        subnet = Self.nextSubnet()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("peat-cluster-\(UUID().uuidString)")
        nodes = Array(repeating: nil, count: size)
        for i in 0..<size { try await start(i) }
    }

    /// Suites run in parallel: each cluster of this process gets its own 127.20.<subnet>.x (a random
    /// start, then the next one), so two clusters never try to bind the same addresses.
    private static let subnets = Mutex(Int.random(in: 0..<250))

    static func nextSubnet() -> Int {
        subnets.withLock { last in
            last = (last + 1) % 250
            return last + 1
        }
    }

    static func nodeID(_ i: Int) -> String { "node-\(i)" }
    func host(_ i: Int) -> String { "127.20.\(subnet).\(i + 1)" }
    func dataDirectory(_ i: Int) -> String { directory.appendingPathComponent(Self.nodeID(i)).path }

    /// Starts node `i` (again), optionally with another secret.
    func start(_ i: Int, secret: FormationSecret? = nil) async throws {
        let store = try LMDBDocumentStore(path: dataDirectory(i))
        let peers = (0..<size).filter { $0 != i }.map { j in
            // By default port 9 (discard) on the peer's loopback address: nothing listens, a dial is refused at once.
            StaticDiscovery.Peer(nodeID: Self.nodeID(j), host: host(j), port: sites.map { $0[i] == $0[j] } ?? true ? Self.port : crossSitePort)
        }
        var transport = TLSSyncTransport.Configuration()
        if let relay {
            transport.relays = [relay]
            transport.relayAccessKey = RelayAccessKey(secret: secret ?? self.secret)
            transport.relayBackoff = .init(initial: .milliseconds(50), maximum: .milliseconds(500))
        }
        var logger = Logger(label: "peat.mesh.\(Self.nodeID(i))")
        logger.logLevel = ProcessInfo.processInfo.environment["PEAT_TEST_LOG"] == nil ? .critical : .debug
        let compaction = compaction
        let antiEntropy = antiEntropy
        let cacheSize = cacheSize
        let manual = clock != nil
        var builder = PeatMeshBuilder(secret: secret ?? self.secret, context: Self.nodeID(i))
            .store(store)
            .listen(host: host(i), port: Self.port)
            .transportConfiguration(transport)
            .discovery(StaticDiscovery(peers: peers))
            .configure {
                $0.antiEntropyInterval = antiEntropy
                $0.compaction = compaction
                $0.documentCacheSize = cacheSize
                $0.identityCheckedSources = ["static"]
                $0.reconnectBackoff = .init(initial: .milliseconds(50), maximum: .milliseconds(500))
                $0.directProbeBackoff = .init(initial: .milliseconds(200), maximum: .milliseconds(500))
                if manual { $0.pushDelay = .zero }
            }
            .logger(logger)
        if let clock { builder = builder.clock(clock) }
        if let factory = metrics(i) { builder = builder.metricsFactory(factory) }
        let mesh = try builder.build()
        let group = ServiceGroup(configuration: .init(services: [mesh], logger: logger))
        let task = Task { try await group.run() }
        nodes[i] = Node(index: i, mesh: mesh, store: store, group: group, task: task)
        try await waitUntil("node \(i) listens") { mesh.isSyncReady }
    }

    /// Stops node `i` gracefully and closes its store.
    func stop(_ i: Int) async throws {
        guard let node = nodes[i] else { return }
        await node.group.triggerGracefulShutdown()
        try await node.task.value
        node.store.close()
        nodes[i] = nil
    }

    func wipe(_ i: Int) throws {
        try FileManager.default.removeItem(atPath: dataDirectory(i))
    }

    func mesh(_ i: Int) -> PeatMesh { nodes[i]!.mesh }

    func shutdown() async {
        for i in 0..<size { try? await stop(i) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Waits until every running node has a session to every other running node.
    func waitConnected(timeout: Duration = .seconds(60)) async throws {
        let running = nodes.compactMap { $0 }
        try await waitUntil("full mesh", timeout: timeout) {
            running.allSatisfy { node in node.mesh.peers().filter(\.connected).count == running.count - 1 }
        }
    }

    /// The JSON of a document on every running node (nil where absent).
    func values(_ collection: String, _ id: String) async throws -> [[String: JSON]?] {
        var result: [[String: JSON]?] = []
        for node in nodes.compactMap({ $0 }) { result.append(try await node.mesh.document(collection, id)?.value) }
        return result
    }

    func waitValue(_ collection: String, _ id: String, equals expected: [String: JSON]?, timeout: Duration = .seconds(40)) async throws {
        try await eventually("\(collection)/\(id) everywhere", timeout: timeout) {
            try await self.values(collection, id).allSatisfy { $0 == expected }
        }
    }
}

/// Waits until a synchronous condition holds (`eventually` for the mesh's synchronous state).
func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
    try await eventually(what, timeout: timeout) { condition() }
}
