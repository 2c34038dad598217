public import Logging
public import PeatDiscovery
import ServiceLifecycle
import Synchronization

/// Peers from the EndpointSlices of the pod's namespace: list, then watch from the list's resource
/// version, so peers appear and disappear within a second of the cluster changing.
///
/// A watch that ends cleanly (server timeout) resumes from the last seen version without listing;
/// a 410 (HTTP or in-stream) lists again. API failures (401/403/5xx/timeouts/refused) keep the last
/// known peers — never a mass `peerLost` — mark the source degraded and retry with jittered backoff,
/// honouring `Retry-After`.
public final class KubernetesDiscovery: DiscoveryStrategy {
    /// Discovery settings, as in the original guide.
    public struct Configuration: Sendable {
        /// EndpointSlices to watch.
        public var labelSelector = "app=peat-mesh"
        /// Annotations with this prefix become peer metadata.
        public var annotationPrefix = "peat."
        /// This node's ID (its pod name), never reported as a peer.
        public var localNodeID: String?
        /// The sync port when a slice has no port named `sync`.
        public var defaultSyncPort = 11204
        /// A full re-list at least this often, as a safety net behind the watch.
        public var resyncInterval: Duration = .seconds(300)
        /// Watch requests ask the server to end after a random time in this range (seconds).
        public var watchTimeout: ClosedRange<Int> = 240...360
        /// Backoff after API failures (client-go: 0.8 s doubling to 30 s).
        public var backoffInitial: Duration = .milliseconds(800)
        public var backoffMaximum: Duration = .seconds(30)

        public init() {}
    }

    public let name = "kubernetes"
    public let events: AsyncStream<DiscoveryEvent>
    private let continuation: AsyncStream<DiscoveryEvent>.Continuation
    private let client: any KubernetesAPIClient
    private let configuration: Configuration
    private let logger: Logger
    private let degradedState = Mutex<String?>(nil)

    /// - Parameters:
    ///   - client: The API client (`HTTPKubernetesAPIClient`, or a test double).
    ///   - configuration: Selector, prefix, ports, timeouts.
    public init(
        client: any KubernetesAPIClient, configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "peat.discovery", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self, bufferingPolicy: .bufferingNewest(4096))
    }

    /// Why the source is degraded (the last API failure), or nil while it is healthy.
    public var degradedReason: String? { degradedState.withLock { $0 } }

    public func run() async throws {
        await watchUntilStopped()
        // Closes the API connections here, in the task, not in a deinit that would block a thread.
        await client.shutdown()
        continuation.finish()
    }

    private func watchUntilStopped() async {
        let state = LoopState(
            cache: EndpointSliceCache(
                peers: EndpointSlicePeers(
                    annotationPrefix: configuration.annotationPrefix, defaultSyncPort: configuration.defaultSyncPort,
                    localNodeID: configuration.localNodeID)))
        var delay = configuration.backoffInitial
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    if state.takeNeedsList() || state.lastList.withLock({ $0 }).duration(to: .now) >= self.configuration.resyncInterval {
                        do {
                            let (slices, version) = try await self.client.listEndpointSlices(labelSelector: self.configuration.labelSelector)
                            state.lastList.withLock { $0 = .now }
                            for event in state.replace(slices, version) { self.continuation.yield(event) }
                        } catch {
                            state.requestList()
                            throw error
                        }
                    }
                    self.markHealthy()
                    try await self.client.watchEndpointSlices(
                        labelSelector: self.configuration.labelSelector, resourceVersion: state.resourceVersion,
                        timeoutSeconds: Int.random(in: self.configuration.watchTimeout)
                    ) { event in
                        switch state.apply(event) {
                        case .events(let events):
                            for event in events { self.continuation.yield(event) }
                            return true
                        case .relist:
                            state.requestList()
                            return false
                        }
                    }
                }
                delay = configuration.backoffInitial
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                let status = ((error as? DiscoveryError)?.cause as? KubernetesAPIStatus)
                if status?.code == 410 {
                    state.requestList()
                    continue
                }
                markDegraded(error)
                let wait = status?.retryAfter ?? jittered(delay)
                delay = min(delay * 2, configuration.backoffMaximum)
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                } catch {
                    return
                }
            }
        }
    }

    private func jittered(_ delay: Duration) -> Duration {
        delay * Double.random(in: 0.8...1.2)
    }

    private func markHealthy() {
        let wasDegraded = degradedState.withLock { state in
            defer { state = nil }
            return state != nil
        }
        if wasDegraded { logger.info("Kubernetes discovery recovered") }
    }

    private func markDegraded(_ error: any Error) {
        let reason = (error as? DiscoveryError)?.message ?? "\(error)"
        let first = degradedState.withLock { state in
            defer { state = reason }
            return state == nil
        }
        // Logged once per outage; the known peers are kept.
        if first { logger.warning("Kubernetes discovery degraded; keeping the last known peers", metadata: ["reason": "\(reason)"]) }
    }

    /// The cache and the "list first" flag, shared between the loop and the watch callback.
    private final class LoopState: Sendable {
        private let cache: Mutex<EndpointSliceCache>
        private let needsList = Mutex(true)
        /// When the slices were last listed.
        let lastList = Mutex(ContinuousClock.now)

        init(cache: EndpointSliceCache) {
            self.cache = Mutex(cache)
        }

        var resourceVersion: String? { cache.withLock { $0.resourceVersion } }

        func requestList() { needsList.withLock { $0 = true } }

        /// Whether a list is due (clearing the request).
        func takeNeedsList() -> Bool {
            needsList.withLock { value in
                defer { value = false }
                return value
            }
        }

        func replace(_ slices: [EndpointSlice], _ version: String?) -> [DiscoveryEvent] {
            cache.withLock { $0.replace(with: slices, resourceVersion: version) }
        }

        func apply(_ event: WatchEvent) -> EndpointSliceCache.Outcome {
            cache.withLock { $0.apply(event) }
        }
    }
}
