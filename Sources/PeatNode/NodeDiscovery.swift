import Logging
import NIOCore
import NIOPosix
import PeatDiscovery
import PeatKubernetesDiscovery

/// The discovery strategy `PEAT_DISCOVERY` selects, with `PEAT_STATIC_PEERS` added as a hybrid
/// source; the mesh runs it and dials what it finds.
struct NodeDiscovery: Sendable {
    /// The strategy to run; nil when none can (see `unavailableReason`).
    let strategy: (any DiscoveryStrategy)?
    /// Why discovery is not running, when it cannot (for example Kubernetes outside a cluster).
    let unavailableReason: String?
    /// The Kubernetes strategy, for its degraded state.
    let kubernetes: KubernetesDiscovery?

    /// The IPv4 address mDNS advertises: `PEAT_BIND_HOST` when it is a specific IPv4 address, else the
    /// first non-loopback IPv4 interface address.
    static func advertisedAddress(bindHost: String) -> String? {
        if StaticDiscovery.isIPv4(bindHost), bindHost != "0.0.0.0" { return bindHost }
        let devices = (try? System.enumerateDevices()) ?? []
        return devices.compactMap { $0.address?.ipAddress }
            .first { StaticDiscovery.isIPv4($0) && !$0.hasPrefix("127.") }
    }

    init(configuration: NodeConfiguration, deviceID: String, environment: Environment) {
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
    func readiness(running: Bool, discovered: Int) -> (ready: Bool, message: String?) {
        if let unavailableReason { return (false, unavailableReason) }
        guard let strategy else { return (false, "no discovery source configured") }
        guard running else { return (false, "\(strategy.name) discovery is not running") }
        if let degraded = kubernetes?.degradedReason { return (false, "kubernetes discovery degraded: \(degraded)") }
        return (true, "\(strategy.name): \(discovered) peer(s) discovered")
    }
}
