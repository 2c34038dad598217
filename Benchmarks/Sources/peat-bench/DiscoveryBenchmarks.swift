import Foundation
import Hummingbird
import PeatDiscovery
import PeatKubernetesDiscovery
import Synchronization

/// How fast discovery reports a cluster change: EndpointSlice change on an API double (plain HTTP
/// on loopback) to `KubernetesDiscovery`'s event, and a new node to the first `peerFound` over mDNS.
enum DiscoveryBenchmarks {
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    static func ms(_ seconds: Double) -> Double { (seconds * 100_000).rounded() / 100 }

    static func runKubernetes() async throws {
        let double = SliceDouble()
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await double.application { sink.yield($0) }.runService() }
            var portIterator = ports.makeAsyncIterator()
            guard let port = await portIterator.next() else { return }
            let client = try HTTPKubernetesAPIClient(
                configuration: .init(
                    server: "http://127.0.0.1:\(port)", namespace: "peat", token: .fixed("bench"), certificateAuthorityPEM: nil))
            let discovery = KubernetesDiscovery(client: client)
            group.addTask { try await discovery.run() }
            var events = discovery.events.makeAsyncIterator()
            _ = await events.next()  // p0 from the list
            while double.watchers == 0 { try await Task.sleep(for: .milliseconds(5)) }
            var latencies: [Double] = []
            for index in 0..<40 {
                let start = ContinuousClock.now
                double.setPods(index % 2 == 0 ? ["p0", "p1"] : ["p0"])
                _ = await events.next()
                let elapsed = start.duration(to: .now)
                latencies.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            emit(
                #"RESULT {"workload":"kubernetes_change_to_event","changes":40,"median_ms":\#(ms(percentile(latencies, 0.5))),"p99_ms":\#(ms(percentile(latencies, 0.99))),"target_ms":1000,"original_poll_ms":30000}"#
            )
            group.cancelAll()
        }
    }

    /// Two mDNS strategies on one multicast-capable interface (run inside a network namespace:
    /// `make bench` does), timing from B's start to A's `peerFound(b)`.
    static func runMDNS() async throws {
        guard let address = ProcessInfo.processInfo.environment["PEAT_BENCH_MDNS_ADDRESS"] else { return }
        var latencies: [Double] = []
        for round in 0..<5 {
            let a = MDNSDiscovery(configuration: .init(nodeID: "bench-a-\(round)", deviceID: nil, port: 11204, address: address))
            let b = MDNSDiscovery(configuration: .init(nodeID: "bench-b-\(round)", deviceID: nil, port: 11205, address: address))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await a.run() }
                try await Task.sleep(for: .milliseconds(200))  // a is up and browsing
                let start = ContinuousClock.now
                group.addTask { try await b.run() }
                for await event in a.events {
                    if case .peerFound(let peer) = event, peer.nodeID == "bench-b-\(round)" { break }
                }
                let elapsed = start.duration(to: .now)
                latencies.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                group.cancelAll()
            }
        }
        emit(
            #"RESULT {"workload":"mdns_new_node_found","rounds":5,"median_ms":\#(ms(percentile(latencies, 0.5))),"max_ms":\#(ms(latencies.max() ?? 0)),"target_ms":2000}"#
        )
    }
}

/// A minimal EndpointSlice list + watch server (plain HTTP) for the latency benchmark.
final class SliceDouble: Sendable {
    private let state = Mutex<(version: Int, pods: [String], watchers: [AsyncStream<ByteBuffer>.Continuation])>((1, ["p0"], []))

    var watchers: Int { state.withLock { $0.watchers.count } }

    func slice(_ pods: [String], _ version: Int) -> String {
        let endpoints = pods.enumerated().map { #"{"addresses":["10.0.0.\#($0.offset + 1)"],"targetRef":{"kind":"Pod","name":"\#($0.element)"}}"# }
        return
            #"{"metadata":{"name":"s","resourceVersion":"\#(version)"},"addressType":"IPv4","endpoints":[\#(endpoints.joined(separator: ","))],"ports":[{"name":"sync","port":11204}]}"#
    }

    func setPods(_ pods: [String]) {
        let (line, watchers) = state.withLock { state in
            state.version += 1
            state.pods = pods
            return (#"{"type":"MODIFIED","object":\#(slice(pods, state.version))}"# + "\n", state.watchers)
        }
        for watcher in watchers { watcher.yield(ByteBuffer(string: line)) }
    }

    func application(onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.get("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices") { request, _ -> Response in
            if request.uri.queryParameters.get("watch") == "1" {
                let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
                self.state.withLock { $0.watchers.append(continuation) }
                return Response(status: .ok, body: ResponseBody(asyncSequence: stream))
            }
            let body = self.state.withLock { state in
                #"{"metadata":{"resourceVersion":"\#(state.version)"},"items":[\#(self.slice(state.pods, state.version))]}"#
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { await onRunning($0.localAddress?.port ?? 0) })
    }
}
