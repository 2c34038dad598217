import Logging
import PeatCRDT
import PeatDiscovery
import PeatIdentity
import PeatStorage
import PeatTestSupport
import PeatTransport
import ServiceLifecycle
import Testing

@testable import PeatMesh

/// Discovery events a test sends by hand.
final class ScriptedDiscovery: DiscoveryStrategy {
    let name = "scripted"
    let events: AsyncStream<DiscoveryEvent>
    let continuation: AsyncStream<DiscoveryEvent>.Continuation

    init() {
        (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
    }

    func run() async throws {
        try? await gracefulShutdown()
        continuation.finish()
    }

    func found(_ nodeID: String, at address: PeerAddress) {
        continuation.yield(.peerFound(PeerInfo(nodeID: nodeID, addresses: [PeerEndpoint(host: address.host, port: address.port)], source: name)))
    }

    func lost(_ nodeID: String) {
        continuation.yield(.peerLost(nodeID: nodeID))
    }
}

/// The peer connector on a clock the test moves: in-memory transports, so every dial, wait and
/// redial is the connector's own decision, observable without a network.
@Suite(.timeLimit(.minutes(1)))
struct ConnectorTests {
    static let secret = FormationSecret.generate()

    struct Node {
        let mesh: PeatMesh
        let address: PeerAddress
        let task: Task<Void, any Error>

        func stop() async throws {
            task.cancel()
            try? await task.value
        }
    }

    static func start(
        _ nodeID: String, host: String, on network: InMemoryNetwork, clock: ManualClock, discovery: ScriptedDiscovery? = nil
    ) -> Node {
        let address = PeerAddress(host: host, port: 11204)
        var builder = PeatMeshBuilder(secret: secret, context: nodeID)
            .transport { keypair, formationKey in
                InMemorySyncTransport(keypair: keypair, formationKey: formationKey, address: address, network: network)
            }
            .clock(clock)
            .configure {
                $0.pushDelay = .zero
                $0.identityCheckedSources = ["scripted"]
            }
        if let discovery { builder = builder.discovery(discovery) }
        let mesh = try! builder.build()
        return Node(mesh: mesh, address: address, task: Task { try await mesh.run() })
    }

    static func state(of peer: String, on node: Node) -> (connected: Bool, state: String)? {
        node.mesh.peers().first { $0.id == peer }.map { ($0.connected, $0.state) }
    }

    @Test func dialsOnlyWhenItsClockSaysAndWaitsWithoutPollingWhileConnected() async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        let discovery = ScriptedDiscovery()
        let a = Self.start("node-a", host: "192.0.2.1", on: network, clock: clock, discovery: discovery)
        defer { a.task.cancel() }
        try await eventually("a listens") { a.mesh.isSyncReady }
        // b is discovered but not up: the first dial fails and the loop waits on the clock.
        discovery.found("node-b", at: PeerAddress(host: "192.0.2.2", port: 11204))
        try await eventually("a backs off") { Self.state(of: "node-b", on: a)?.state == "backoff" }
        let b = Self.start("node-b", host: "192.0.2.2", on: network, clock: clock)
        defer { b.task.cancel() }
        try await eventually("b listens") { b.mesh.isSyncReady }
        // b is up, but nothing dials until the backoff delay has passed on the clock.
        for _ in 0..<20 { await Task.yield() }
        #expect(Self.state(of: "node-b", on: a)?.connected == false)
        #expect(b.mesh.peers().isEmpty)
        clock.advance(by: .seconds(1))
        try await eventually("a connected to b") { Self.state(of: "node-b", on: a).map { $0.connected && $0.state == "connected" } == true }
        try await eventually("b sees a") { b.mesh.peers().first?.id == "node-a" }
        // While connected, the dial loop holds no timer: the only sleepers are each node's two
        // timers, its session's anti-entropy ticker and its maintenance loop (history windows).
        try await eventually("the dial loop waits on its session") { clock.sleeperCount == 4 }
        try await a.mesh.put("commands", "c1", ["go": .bool(true)])
        try await eventually("the write reaches b") { try await b.mesh.document("commands", "c1") != nil }
        // b stops: a's session ends, and the loop redials only after the clock's backoff.
        try await b.stop()
        try await eventually("a lost the session") { Self.state(of: "node-b", on: a)?.connected == false }
        #expect(["disconnected", "backoff", "connecting"].contains(Self.state(of: "node-b", on: a)?.state ?? ""))
    }

    @Test func aPeerDiscoveryLosesIsDisconnectedAtOnceAndNotRedialled() async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        let discovery = ScriptedDiscovery()
        let a = Self.start("node-a", host: "192.0.2.1", on: network, clock: clock, discovery: discovery)
        let b = Self.start("node-b", host: "192.0.2.2", on: network, clock: clock)
        defer {
            a.task.cancel()
            b.task.cancel()
        }
        try await eventually("both listen") { a.mesh.isSyncReady && b.mesh.isSyncReady }
        var events = a.mesh.events().makeAsyncIterator()
        discovery.found("node-b", at: b.address)
        try await eventually("connected") { Self.state(of: "node-b", on: a)?.connected == true }
        guard case .peerConnected(let peer)? = await events.next() else {
            Issue.record("expected peerConnected")
            return
        }
        #expect(peer.id == "node-b")
        discovery.lost("node-b")
        // No clock moves: the session ends because discovery said so, and the peer is gone from the list.
        guard case .peerDisconnected(let gone, let reason)? = await events.next() else {
            Issue.record("expected peerDisconnected")
            return
        }
        #expect(gone.id == "node-b" && reason == "lost")
        #expect(a.mesh.peers().allSatisfy { $0.id != "node-b" })
        try await eventually("b sees the connection end") { b.mesh.peers().allSatisfy { !$0.connected } }
        clock.advance(by: .seconds(60))
        for _ in 0..<50 { await Task.yield() }
        #expect(a.mesh.peers().isEmpty, "a lost peer is not dialled again")
    }
}
