import Logging
import NIOCore
import NIOPosix
import PeatDiscovery
import ServiceLifecycle
import Synchronization

/// Runs the discovery strategy `PEAT_DISCOVERY` selects (with `PEAT_STATIC_PEERS` added as a
/// hybrid source) and keeps the table of discovered peers for the broker and the logs.
///
/// Discovered peers are not dialled yet: the peer connector lands with the mesh composition.
final class NodeDiscovery: Service {
    /// Why discovery is not running, when it cannot (for example Kubernetes outside a cluster).
    let unavailableReason: String?
    private let strategy: (any DiscoveryStrategy)?
    private let kubernetes: KubernetesDiscovery?
    private let logger: Logger
    private let table = Mutex<[String: PeerInfo]>([:])
    private let started = Mutex(false)

    /// The IPv4 address mDNS advertises: `PEAT_BIND_HOST` when it is a specific IPv4 address, else the
    /// first non-loopback IPv4 interface address.
    static func advertisedAddress(bindHost: String) -> String? {
        if StaticDiscovery.isIPv4(bindHost), bindHost != "0.0.0.0" { return bindHost }
        let devices = (try? System.enumerateDevices()) ?? []
        return devices.compactMap { $0.address?.ipAddress }
            .first { StaticDiscovery.isIPv4($0) && !$0.hasPrefix("127.") }
    }

    init(configuration: NodeConfiguration, deviceID: String, environment: Environment, logger: Logger) {
        self.logger = logger
        var sources: [any DiscoveryStrategy] = []
        var unavailable: String?
        var kubernetes: KubernetesDiscovery?
        switch configuration.discovery {
        case .static:
            break
        case .kubernetes:
            do {
                let api: KubernetesAPIConfiguration
                if environment["KUBERNETES_SERVICE_HOST"] == nil, let kubeconfig = environment["KUBECONFIG"] {
                    api = try KubernetesAPIConfiguration.kubeconfig(path: kubeconfig)
                } else {
                    api = try KubernetesAPIConfiguration.inCluster(environment: environment.values)
                }
                var discoveryConfiguration = KubernetesDiscovery.Configuration()
                discoveryConfiguration.localNodeID = configuration.identity.nodeID
                discoveryConfiguration.defaultSyncPort = configuration.syncPort
                let strategy = KubernetesDiscovery(
                    client: try HTTPKubernetesAPIClient(configuration: api), configuration: discoveryConfiguration,
                    logger: Logger(label: "peat.discovery"))
                kubernetes = strategy
                sources.append(strategy)
            } catch {
                unavailable = "kubernetes discovery cannot start: \(error.message)"
            }
        case .mdns:
            if let address = Self.advertisedAddress(bindHost: configuration.bindHost) {
                let mdns = MDNSDiscovery.Configuration(
                    nodeID: configuration.identity.nodeID, deviceID: deviceID, port: configuration.syncPort, address: address)
                sources.append(MDNSDiscovery(configuration: mdns, logger: Logger(label: "peat.discovery")))
            } else {
                unavailable = "mdns discovery needs an IPv4 interface address: set PEAT_BIND_HOST to one"
            }
        }
        if !configuration.staticPeers.isEmpty || configuration.discovery == .static {
            sources.append(StaticDiscovery(peers: configuration.staticPeers))
        }
        self.kubernetes = kubernetes
        self.unavailableReason = unavailable
        switch sources.count {
        case 0: strategy = nil
        case 1: strategy = sources[0]
        default: strategy = HybridDiscovery(sources)
        }
    }

    /// The readiness check: running, and (for Kubernetes) not degraded.
    var readiness: (ready: Bool, message: String?) {
        if let unavailableReason { return (false, unavailableReason) }
        guard let strategy else { return (false, "no discovery source configured") }
        guard started.withLock({ $0 }) else { return (false, "\(strategy.name) discovery is starting") }
        if let degraded = kubernetes?.degradedReason { return (false, "kubernetes discovery degraded: \(degraded)") }
        return (true, "\(strategy.name): \(table.withLock { $0.count }) peer(s) discovered")
    }

    /// The discovered peers, by node ID.
    var discovered: [PeerInfo] {
        table.withLock { table in table.keys.sorted().map { table[$0]! } }
    }

    func run() async throws {
        guard let strategy else {
            if let unavailableReason { logger.warning("Discovery unavailable", metadata: ["reason": "\(unavailableReason)"]) }
            try? await gracefulShutdown()
            return
        }
        started.withLock { $0 = true }
        logger.info("Discovery started source=\(strategy.name)")
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await strategy.run() }
            group.addTask {
                for await event in strategy.events {
                    self.record(event)
                }
            }
        }
    }

    private func record(_ event: DiscoveryEvent) {
        switch event {
        case .peerFound(let peer), .peerUpdated(let peer):
            let isNew = table.withLock { table in
                defer { table[peer.nodeID] = peer }
                return table[peer.nodeID] == nil
            }
            let addresses = "[" + peer.addresses.map(\.description).joined(separator: ", ") + "]"
            logger.info("\(isNew ? "Peer discovered" : "Peer updated") peer=\(peer.nodeID) addresses=\(addresses) source=\(peer.source)")
        case .peerLost(let nodeID):
            _ = table.withLock { $0.removeValue(forKey: nodeID) }
            logger.info("Peer lost peer=\(nodeID)")
        }
    }
}
