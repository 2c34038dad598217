import Foundation
import PeatTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Discovery's word ends a session: three `peat-mesh-node` processes find each other through a
/// Kubernetes API double; one is then hung (SIGSTOP: its kernel still answers TCP, its process
/// answers nothing) and its endpoint marked terminating and deleted. The other two must drop it at
/// once, on discovery's word — not after the 5 s a TLS close waits for the peer's close_notify, nor the idle timeout.
@Suite(.timeLimit(.minutes(2)))
struct LostPeerTests {
    @Test func aHungPeerThatDiscoveryLostIsDisconnectedAtOnce() async throws {
        let double = try KubernetesAPIDouble()
        let subnet = Int.random(in: 1...250)
        let hosts = (1...3).map { "127.23.\(subnet).\($0)" }
        let pods = (0..<3).map { KubernetesAPIDouble.Endpoint(pod: "node-\($0)", ip: hosts[$0]) }
        double.setSlice("peat-mesh-abc", endpoints: pods)
        let directories = (0..<4).map { _ in RunCommandTests.temporaryDirectory() }
        defer { for directory in directories { try? FileManager.default.removeItem(atPath: directory) } }
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await double.application { portSink.yield($0) }.runService() }
            defer { group.cancelAll() }
            var portIterator = ports.makeAsyncIterator()
            let port = try #require(await portIterator.next())
            let kubeconfig = directories[3] + "/kubeconfig"
            try FileManager.default.createDirectory(atPath: directories[3], withIntermediateDirectories: true)
            try Data(double.kubeconfig(port: port).utf8).write(to: URL(fileURLWithPath: kubeconfig))

            let nodes = try (0..<3).map { i in
                try NodeProcess(
                    environment: RunCommandTests.environment(
                        dataDirectory: directories[i],
                        [
                            "HOSTNAME": "node-\(i)", "PEAT_DISCOVERY": "kubernetes", "KUBECONFIG": kubeconfig,
                            "PEAT_BIND_HOST": hosts[i], "PEAT_SYNC_PORT": "11204", "PEAT_BROKER_PORT": "8081",
                            // The hung peer must be dropped on discovery's word, never by the idle timeout.
                            "PEAT_SYNC_IDLE_TIMEOUT_SECS": "600",
                        ]))
            }
            defer {
                for node in nodes where node.process.isRunning {
                    node.signal(SIGCONT)
                    node.signal(SIGKILL)
                }
            }
            let base = hosts.map { "http://\($0):8081/api/v1" }
            for node in nodes { _ = try await NodeClusterTests.blocking { try node.waitForOutput(containing: "Broker listening") } }
            try await NodeClusterTests.eventually("every node connected to the other two") {
                for url in base where try await Self.connectedPeers(url) != Set((0..<3).map { "node-\($0)" }).subtracting([Self.nodeID(url, hosts)]) {
                    return false
                }
                return true
            }

            // node-2 hangs; its pod is marked terminating, then deleted.
            nodes[2].signal(SIGSTOP)
            double.setSlice("peat-mesh-abc", endpoints: [pods[0], pods[1], .init(pod: "node-2", ip: hosts[2], serving: false, terminating: true)])
            let lost = ContinuousClock.now
            double.setSlice("peat-mesh-abc", endpoints: [pods[0], pods[1]])
            try await NodeClusterTests.eventually("node-2 dropped by both others") {
                let first = try await Self.connectedPeers(base[0])
                let second = try await Self.connectedPeers(base[1])
                return first == ["node-1"] && second == ["node-0"]
            }
            let elapsed = lost.duration(to: .now)
            // The session ended on discovery's word: the logs below say reason=lost (the idle timeout is
            // 600 s here). How soon is printed, not asserted (typically tens of milliseconds; 5 s when the
            // TLS close waited for the hung peer), so a loaded machine cannot fail it.
            print("LostPeerTests: a hung peer lost by discovery was disconnected after \(elapsed)")

            nodes[2].signal(SIGCONT)
            for node in nodes { node.signal(SIGTERM) }
            for (i, node) in nodes.enumerated() {
                let result = try await NodeClusterTests.blocking { try node.finish() }
                #expect(result.status == 0)
                if i < 2 {
                    #expect(result.stdout.contains("Peer lost peer=node-2"))
                    #expect(result.stdout.contains("Peer disconnected peer=node-2") && result.stdout.contains("reason=lost"))
                }
            }
        }
    }

    static func nodeID(_ url: String, _ hosts: [String]) -> String {
        "node-\(hosts.firstIndex { url.contains($0) } ?? -1)"
    }

    static func connectedPeers(_ url: String) async throws -> Set<String> {
        let peers = try await NodeClusterTests.request("GET", url + "/peers")
        return Set((peers.json["peers"] as? [[String: Any]] ?? []).filter { $0["connected"] as? Bool == true }.compactMap { $0["id"] as? String })
    }
}
