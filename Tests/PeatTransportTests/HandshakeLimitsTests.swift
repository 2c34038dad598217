import MetricsTestKit
import NIOCore
import NIOEmbedded
import NIOPosix
import PeatIdentity
import Testing

@testable import PeatTransport

@Suite(.timeLimit(.minutes(1)))
struct HandshakeLimitsTests {
    // MARK: The accounting

    @Test func admissionCountsInTotalAndPerAddressAndReleasesOnce() {
        var admission = HandshakeAdmission(limits: HandshakeLimits(maximumPending: 3, maximumPendingPerAddress: 2))
        // The markers stay alive for the whole test, so their identifiers are distinct.
        let markers = (0..<5).map { _ in Marker() }
        let ids = markers.map(ObjectIdentifier.init)
        #expect(admission.admit(ids[0], from: "192.0.2.1") == nil)
        #expect(admission.admit(ids[1], from: "192.0.2.1") == nil)
        #expect(admission.admit(ids[2], from: "192.0.2.1") == .perAddress(limit: 2))
        #expect(admission.admit(ids[2], from: "192.0.2.2") == nil)
        #expect(admission.admit(ids[3], from: "192.0.2.3") == .total(limit: 3))
        #expect(admission.pending == 3 && admission.pending(from: "192.0.2.1") == 2)
        admission.release(ids[0])
        admission.release(ids[0])
        #expect(admission.pending == 2 && admission.pending(from: "192.0.2.1") == 1)
        #expect(admission.admit(ids[3], from: "192.0.2.1") == nil)
        #expect(admission.admit(ids[3], from: "192.0.2.1") == nil, "admitting the same connection twice counts it once")
        #expect(admission.pending == 3)
        for id in ids { admission.release(id) }
        #expect(admission.pending == 0 && admission.pending(from: "192.0.2.1") == 0)
        withExtendedLifetime(markers) {}
    }

    private final class Marker {}

    // MARK: The idle deadline (driven by the embedded loop's clock)

    @Test func idleDeadlineIsResetByTrafficAndEndsWithAuthentication() throws {
        let gate = AuthenticationGate()
        let channel = EmbeddedChannel()
        let errors = ErrorCollector()
        try channel.pipeline.syncOperations.addHandler(HandshakeIdleHandler(timeout: .seconds(5), gate: gate))
        try channel.pipeline.syncOperations.addHandler(errors)
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        try channel.writeInbound(ByteBuffer(bytes: [0x16]))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(errors.codes.isEmpty, "a byte within the deadline restarts it")
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(errors.codes == [.handshakeTimeout])

        let authenticated = EmbeddedChannel()
        let quiet = ErrorCollector()
        let open = AuthenticationGate()
        try authenticated.pipeline.syncOperations.addHandler(HandshakeIdleHandler(timeout: .seconds(5), gate: open))
        try authenticated.pipeline.syncOperations.addHandler(quiet)
        open.isOpen = true
        try authenticated.writeInbound(ByteBuffer(bytes: [1]))
        authenticated.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(quiet.codes.isEmpty, "an authenticated connection is the keepalive's business")
        _ = try? channel.finish()
        _ = try? authenticated.finish()
    }

    final class ErrorCollector: ChannelInboundHandler {
        typealias InboundIn = NIOAny
        var codes: [TransportError.Code] = []
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            codes.append((error as? TransportError)?.code ?? .connectionClosed)
        }
    }

    // MARK: A real listener

    /// A plain TCP connection from `source` that sends nothing.
    static func idleConnection(from source: String, to address: PeerAddress) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .connect(host: address.host, port: address.port).get()
    }

    @Test func connectionsPastTheLimitsAreClosedBeforeAnyTLSWork() async throws {
        let metrics = TestMetrics()
        let server = try TransportHarness.transport("peat-mesh-0", metrics: metrics) {
            // Neither deadline can fire during the test: only the limits close connections.
            $0.handshakeTimeout = .seconds(120)
            $0.handshakeLimits = HandshakeLimits(maximumPending: 4, maximumPendingPerAddress: 2, idleTimeout: .seconds(120))
        }
        let member = try TransportHarness.transport("peat-mesh-1")
        try await TransportHarness.running([server, member]) {
            let address = try await server.listeningAddress()
            var held: [any Channel] = []
            for _ in 0..<2 { held.append(try await Self.idleConnection(from: "127.0.0.2", to: address)) }
            try await TransportHarness.eventually { server.pendingHandshakes == 2 }

            let overAddress = try await Self.idleConnection(from: "127.0.0.2", to: address)
            try await TransportHarness.withTimeout(.seconds(10)) { try await overAddress.closeFuture.get() }
            #expect(TransportHarness.rejections(metrics, .tooManyHandshakes) == 1)

            for source in ["127.0.0.3", "127.0.0.4"] { held.append(try await Self.idleConnection(from: source, to: address)) }
            try await TransportHarness.eventually { server.pendingHandshakes == 4 }
            let overTotal = try await Self.idleConnection(from: "127.0.0.5", to: address)
            try await TransportHarness.withTimeout(.seconds(10)) { try await overTotal.closeFuture.get() }
            #expect(TransportHarness.rejections(metrics, .tooManyHandshakes) == 2)
            // The refused ones never got a pipeline: only the four admitted have one.
            #expect(server.openChannelCount == 4)
            let stillOpen = held.filter { $0.isActive }.count
            #expect(stillOpen == 4, "admitted connections are left alone")

            // While full, a member is refused too; once the slots free up it connects, and its
            // slot is given back when it has authenticated, not when it closes.
            let whileFull = try? await member.connect(to: address, expectedPeer: nil)
            #expect(whileFull == nil)
            for channel in held { try await channel.close() }
            try await TransportHarness.eventually { server.pendingHandshakes == 0 }
            _ = try await member.connect(to: address, expectedPeer: server.localIdentity.deviceID)
            try await TransportHarness.eventually { server.connectedPeers.count == 1 }
            #expect(server.pendingHandshakes == 0)
        }
    }

    @Test func silentHandshakeIsClosedAtTheIdleDeadline() async throws {
        let metrics = TestMetrics()
        let server = try TransportHarness.transport("peat-mesh-0", metrics: metrics) {
            $0.handshakeTimeout = .seconds(120)
            $0.handshakeLimits.idleTimeout = .milliseconds(200)
        }
        try await TransportHarness.running([server]) {
            let channel = try await Self.idleConnection(from: "127.0.0.1", to: try await server.listeningAddress())
            try await TransportHarness.withTimeout(.seconds(10)) { try await channel.closeFuture.get() }
            try await TransportHarness.eventually { TransportHarness.rejections(metrics, .handshakeTimeout) == 1 }
            try await TransportHarness.eventually { server.pendingHandshakes == 0 }
        }
    }
}
