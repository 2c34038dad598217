import Crypto
import Foundation
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOSSL
import PeatIdentity
import SwiftASN1
import Testing
import X509

@testable import PeatTransport

@Suite(.timeLimit(.minutes(1)))
struct TLSSyncTransportTests {
    /// Sends `message` from the dialling side and an answer back, over real TLS on loopback.
    static func exchange(dialer: TLSSyncTransport, listener: TLSSyncTransport) async throws {
        let address = try await listener.listeningAddress()
        async let accepted = TransportHarness.nextInbound(listener)
        let outbound = try await dialer.connect(to: address, expectedPeer: listener.localIdentity.deviceID)
        let inbound = try await accepted
        #expect(outbound.peer == listener.localIdentity)
        #expect(inbound.peer == dialer.localIdentity)
        #expect(outbound.role == .initiator && inbound.role == .responder)
        let question = Array("ping from \(dialer.localIdentity)".utf8)
        async let answered: [UInt8]? = outbound.withFrames { frames, writer in
            try await writer.send(question)
            let iterator = frames.makeAsyncIterator()
            return try await iterator.next()
        }
        let received: [UInt8]? = try await inbound.withFrames { frames, writer in
            let iterator = frames.makeAsyncIterator()
            let got = try await iterator.next()
            try await writer.send(Array((got ?? []).reversed()))
            return got
        }
        #expect(received == question)
        #expect(try await answered == Array(question.reversed()))
    }

    @Test func threeTransportsExchangeFramesPairwise() async throws {
        let nodes = try ["peat-mesh-0", "peat-mesh-1", "peat-mesh-2"].map { try TransportHarness.transport($0) }
        try await TransportHarness.running(nodes) {
            try await Self.exchange(dialer: nodes[0], listener: nodes[1])
            try await Self.exchange(dialer: nodes[0], listener: nodes[2])
            try await Self.exchange(dialer: nodes[1], listener: nodes[2])
        }
    }

    @Test func wrongFormationSecretIsRejectedInBothDirections() async throws {
        let memberMetrics = TestMetrics()
        let outsiderMetrics = TestMetrics()
        let member = try TransportHarness.transport("peat-mesh-0", metrics: memberMetrics)
        let outsider = try TransportHarness.transport("peat-mesh-1", secret: Array("not the formation's secret".utf8), metrics: outsiderMetrics)
        try await TransportHarness.running([member, outsider]) {
            for (dialer, listener, metrics) in [(outsider, member, memberMetrics), (member, outsider, outsiderMetrics)] {
                let address = try await listener.listeningAddress()
                await #expect {
                    _ = try await dialer.connect(to: address, expectedPeer: nil)
                } throws: { error in
                    (error as? TransportError)?.code == .notFormationMember
                }
                // The listener refused it too, and counted why.
                try await TransportHarness.eventually { TransportHarness.rejections(metrics, .notFormationMember) == 1 }
                #expect(listener.connectedPeers.isEmpty && dialer.connectedPeers.isEmpty)
            }
        }
    }

    @Test func unexpectedIdentityIsRejected() async throws {
        let a = try TransportHarness.transport("peat-mesh-0")
        let b = try TransportHarness.transport("peat-mesh-1")
        try await TransportHarness.running([a, b]) {
            let expected = DeviceKeypair.fromSeed(TransportHarness.secret, context: "peat-mesh-2").deviceID
            await #expect {
                _ = try await a.connect(to: try await b.listeningAddress(), expectedPeer: expected)
            } throws: { error in
                (error as? TransportError)?.code == .unexpectedIdentity
            }
            #expect(a.connectedPeers.isEmpty)
        }
    }

    /// A TLS client that is not a formation member at the certificate level.
    static func rawTLSClient(certificate: NIOSSLCertificate?, key: NIOSSLPrivateKey?, to address: PeerAddress) async throws -> (closed: Bool, bytesRead: Int) {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .none
        tls.applicationProtocols = [syncALPN]
        tls.verifySignatureAlgorithms = [.ed25519, .ecdsaSecp256R1Sha256]
        if let certificate, let key {
            tls.certificateChain = [.certificate(certificate)]
            tls.privateKey = .privateKey(key)
        }
        let context = try NIOSSLContext(configuration: tls)
        let counter = ByteCounter()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(counter)
                }
            }
            .connect(host: address.host, port: address.port).get()
        // Try to talk: a hello frame, as a member would.
        channel.writeAndFlush(ByteBuffer(bytes: [1, 1, 0, 0, 0, 32] + [UInt8](repeating: 0, count: 32)), promise: nil)
        let closed: Bool
        do {
            try await TransportHarness.withTimeout(.seconds(5)) { try await channel.closeFuture.get() }
            closed = true
        } catch {
            closed = false
            try? await channel.close()
        }
        return (closed, counter.count)
    }

    final class ByteCounter: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var count = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { count += unwrapInboundIn(data).readableBytes }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    @Test func clientWithoutCertificateGetsNothing() async throws {
        let server = try TransportHarness.transport("peat-mesh-0")
        try await TransportHarness.running([server]) {
            let result = try await Self.rawTLSClient(certificate: nil, key: nil, to: try await server.listeningAddress())
            #expect(result.closed)
            #expect(result.bytesRead == 0)
            #expect(server.connectedPeers.isEmpty)
        }
    }

    @Test func clientWithNonEd25519CertificateGetsNothing() async throws {
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName { CommonName("not-a-device") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: certificateKey.publicKey,
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(3600),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: .init(), issuerPrivateKey: certificateKey)
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let nioCertificate = try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
        let nioKey = try NIOSSLPrivateKey(bytes: Array(try certificateKey.serializeAsPEM().pemString.utf8), format: .pem)
        let server = try TransportHarness.transport("peat-mesh-0")
        try await TransportHarness.running([server]) {
            let result = try await Self.rawTLSClient(certificate: nioCertificate, key: nioKey, to: try await server.listeningAddress())
            #expect(result.closed)
            #expect(result.bytesRead == 0)
            #expect(server.connectedPeers.isEmpty)
        }
    }

    @Test func silentClientIsDroppedAfterTheHandshakeTimeout() async throws {
        let metrics = TestMetrics()
        let server = try TransportHarness.transport("peat-mesh-0", metrics: metrics) { $0.handshakeTimeout = .milliseconds(300) }
        try await TransportHarness.running([server]) {
            let address = try await server.listeningAddress()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: address.host, port: address.port).get()
            try await TransportHarness.withTimeout(.seconds(5)) { try await channel.closeFuture.get() }
            try await TransportHarness.eventually { TransportHarness.rejections(metrics, .handshakeTimeout) == 1 }
        }
    }

    /// A listener stopped while accepted connections are still queued (swift-nio#2637) and dials
    /// cancelled mid-handshake release their channels instead of trapping — a node stopped by
    /// SIGTERM while peers connect must exit cleanly.
    @Test func stoppingWithConnectionsInFlightDoesNotTrap() async throws {
        for _ in 0..<5 {
            let server = try TransportHarness.transport("peat-mesh-0")
            let dialer = try TransportHarness.transport("peat-mesh-1")
            let serving = Task { try await server.run() }
            let address = try await server.listeningAddress()
            let clients = try await withThrowingTaskGroup(of: (any Channel).self) { group in
                for _ in 0..<48 {
                    group.addTask {
                        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                            .connect(host: address.host, port: address.port).get()
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let dials = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 { group.addTask { _ = try? await dialer.connect(to: address, expectedPeer: nil) } }
                }
            }
            serving.cancel()
            dials.cancel()
            _ = try? await serving.value
            await dials.value
            for client in clients { try? await client.close() }
            #expect(server.connectedPeers.isEmpty)
        }
    }

    /// Both ends set TCP_NODELAY at the TCP level and nothing that needs privileges: the option
    /// once went to SOL_SOCKET (SO_DEBUG, CAP_NET_ADMIN only), which broke every dial in a container.
    @Test func connectionsSetNoDelayAndNoPrivilegedOption() async throws {
        let a = try TransportHarness.transport("peat-mesh-0")
        let b = try TransportHarness.transport("peat-mesh-1")
        try await TransportHarness.running([a, b]) {
            async let accepted = TransportHarness.nextInbound(b)
            let outbound = try await a.connectTLS(to: try await b.listeningAddress(), expectedPeer: nil)
            let inbound = try #require(try await accepted as? TLSSyncConnection)
            for connection in [outbound, inbound] {
                let channel = connection.asyncChannel.channel
                #expect(try await channel.getOption(.tcpOption(.tcp_nodelay)).get() != 0)
                #expect(try await channel.getOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG))).get() == 0)
            }
        }
    }

    /// A failure reported on the listening channel (an accepted connection that could not be set up)
    /// is reported and stops there, so the accept loop keeps running.
    @Test func acceptFailuresDoNotReachTheListener() throws {
        let reported = NIOLockedValueBox<[String]>([])
        let channel = EmbeddedChannel()
        let downstream = ErrorRecorder()
        try channel.pipeline.syncOperations.addHandler(AcceptFailureHandler { error in reported.withLockedValue { $0.append("\(error)") } })
        try channel.pipeline.syncOperations.addHandler(downstream)
        channel.pipeline.fireErrorCaught(ChannelError.ioOnClosedChannel)
        #expect(reported.withLockedValue { $0.count } == 1)
        #expect(downstream.errors.isEmpty)
        _ = try channel.finish()
    }

    static let hostileBytes: [(String, [UInt8], TransportError.Code)] = [
        ("garbage", Array("GET / HTTP/1.1\r\n\r\n".utf8), .unsupportedVersion),
        ("oversized", [1, 0, 0x7f, 0xff, 0xff, 0xff], .frameTooLarge),
        ("unknown kind", [1, 9, 0, 0, 0, 0], .malformedFrame),
    ]

    @Test(arguments: hostileBytes)
    func badFramesCloseOnlyThatConnection(_ name: String, _ bytes: [UInt8], _ expected: TransportError.Code) async throws {
        let victim = try TransportHarness.transport("peat-mesh-0") { $0.maximumPayloadSize = 1 << 20 }
        let attacker = try TransportHarness.transport("peat-mesh-1")
        let bystander = try TransportHarness.transport("peat-mesh-2")
        try await TransportHarness.running([victim, attacker, bystander]) {
            async let accepted = TransportHarness.nextInbound(victim)
            let outbound = try await attacker.connectTLS(to: try await victim.listeningAddress(), expectedPeer: nil)
            let inbound = try await accepted
            try await TransportHarness.writeRaw(bytes, on: outbound)
            await #expect {
                try await inbound.withFrames { frames, _ in
                    for try await _ in frames {}
                }
            } throws: { error in
                (error as? TransportError)?.code == expected
            }
            // The listener keeps serving everyone else.
            try await Self.exchange(dialer: bystander, listener: victim)
        }
    }

    @Test func truncatedFrameAtCloseIsReported() async throws {
        let victim = try TransportHarness.transport("peat-mesh-0")
        let peer = try TransportHarness.transport("peat-mesh-1")
        try await TransportHarness.running([victim, peer]) {
            async let accepted = TransportHarness.nextInbound(victim)
            let outbound = try await peer.connectTLS(to: try await victim.listeningAddress(), expectedPeer: nil)
            let inbound = try await accepted
            try await TransportHarness.writeRaw([1, 0, 0, 0, 0x03, 0xe8, 1, 2, 3], on: outbound)  // claims 1000 bytes
            await outbound.close()
            await #expect {
                try await inbound.withFrames { frames, _ in for try await _ in frames {} }
            } throws: { error in
                (error as? TransportError)?.code == .malformedFrame
            }
        }
    }

    @Test func oversizedSendIsRefusedLocally() async throws {
        let a = try TransportHarness.transport("peat-mesh-0") { $0.maximumPayloadSize = 1024 }
        let b = try TransportHarness.transport("peat-mesh-1")
        try await TransportHarness.running([a, b]) {
            let connection = try await a.connect(to: try await b.listeningAddress(), expectedPeer: nil)
            await #expect {
                try await connection.withFrames { _, writer in try await writer.send([UInt8](repeating: 0, count: 1025)) }
            } throws: { error in
                (error as? TransportError)?.code == .frameTooLarge
            }
        }
    }

    /// Which connection survives is decided by the policy, not by timing: both dials complete
    /// whatever their order (handshake deadline and wait sized for a loaded machine), and both sides
    /// keep the one the lower device initiated.
    @Test func simultaneousDialKeepsOneConnection() async throws {
        // The window covers the whole test: on a loaded machine the two handshakes can finish more
        // than the default 5 s apart, and past the window the newer connection wins instead.
        let configure: (inout TLSSyncTransport.Configuration) -> Void = {
            $0.handshakeTimeout = .seconds(20)
            $0.simultaneousDial = SimultaneousDialPolicy(window: .seconds(300))
        }
        let a = try TransportHarness.transport("peat-mesh-0", configure: configure)
        let b = try TransportHarness.transport("peat-mesh-1", configure: configure)
        try await TransportHarness.running([a, b]) {
            let addressA = try await a.listeningAddress()
            let addressB = try await b.listeningAddress()
            // A dial may lose to the other connection (refused as a duplicate, or closed by the peer
            // mid-handshake when its own side settled first): only the end state matters.
            async let fromA = try? a.connect(to: addressB, expectedPeer: nil)
            async let fromB = try? b.connect(to: addressA, expectedPeer: nil)
            _ = await (fromA, fromB)
            try await TransportHarness.eventually(timeout: .seconds(30)) {
                a.activeConnections.count == 1 && b.activeConnections.count == 1
                    && a.activeConnections[0].asyncChannel.channel.isActive && b.activeConnections[0].asyncChannel.channel.isActive
                    && a.activeConnections[0].role != b.activeConnections[0].role
            }
            let lowerIsA = a.localIdentity.deviceID < b.localIdentity.deviceID
            #expect(a.activeConnections[0].role == (lowerIsA ? .initiator : .responder))
            #expect(a.activeConnections[0].peer == b.localIdentity)
        }
    }

    @Test func reconnectsAfterThePeerRestarts() async throws {
        let dialer = try TransportHarness.transport("peat-mesh-0")
        let first = try TransportHarness.transport("peat-mesh-1")
        let (sessions, sessionStarted) = AsyncStream.makeStream(of: PeerIdentity.self)
        let address = try await TransportHarness.running([dialer]) {
            try await withThrowingTaskGroup(of: Void.self) { dialling in
                var iterator = sessions.makeAsyncIterator()
                // The peer's first life: the dialler connects to it.
                let address = try await withThrowingTaskGroup(of: Void.self) { peer in
                    peer.addTask { try await first.run() }
                    let address = try await first.listeningAddress()
                    dialling.addTask {
                        await dialer.maintainConnection(
                            to: address, expectedPeer: first.localIdentity.deviceID,
                            backoff: ReconnectBackoff(initial: .milliseconds(50), maximum: .milliseconds(200))
                        ) { connection in
                            sessionStarted.yield(connection.peer)
                            _ = try? await connection.withFrames { frames, _ in for try await _ in frames {} }
                        }
                    }
                    #expect(await iterator.next() == first.localIdentity)
                    peer.cancelAll()  // stop the peer: its run() returns and closes every connection
                    return address
                }
                // The peer's second life, on the same port with the same identity.
                let restarted = try TransportHarness.transport("peat-mesh-1", port: address.port)
                dialling.addTask { try await restarted.run() }
                #expect(await iterator.next() == restarted.localIdentity)
                dialling.cancelAll()
                return address
            }
        }
        #expect(address.port > 0)
    }

    @Test func silentPeerIsDisconnectedAfterTheIdleTimeout() async throws {
        let watchful = try TransportHarness.transport("peat-mesh-0") {
            $0.idleTimeout = .milliseconds(400)
            $0.keepaliveInterval = .seconds(30)
        }
        let quiet = try TransportHarness.transport("peat-mesh-1") { $0.keepaliveInterval = .seconds(30) }
        try await TransportHarness.running([watchful, quiet]) {
            let connection = try await watchful.connect(to: try await quiet.listeningAddress(), expectedPeer: nil)
            #expect(connection.peer == quiet.localIdentity)
            // The reader learns why the connection ended.
            await #expect {
                try await TransportHarness.withTimeout(.seconds(10)) {
                    try await connection.withFrames { inbound, _ in for try await _ in inbound {} }
                }
            } throws: { error in
                (error as? TransportError)?.code == .idleTimeout
            }
            try await TransportHarness.eventually { watchful.connectedPeers.isEmpty }
        }
    }

    @Test func keepalivePingsHoldAnIdleConnectionOpen() async throws {
        let metrics = TestMetrics()
        let a = try TransportHarness.transport("peat-mesh-0", metrics: metrics) {
            $0.idleTimeout = .milliseconds(1500)
            $0.keepaliveInterval = .milliseconds(100)
        }
        let b = try TransportHarness.transport("peat-mesh-1") {
            $0.idleTimeout = .milliseconds(1500)
            $0.keepaliveInterval = .milliseconds(100)
        }
        try await TransportHarness.running([a, b]) {
            _ = try await a.connect(to: try await b.listeningAddress(), expectedPeer: nil)
            // Several idle timeouts pass with no application data; keepalive keeps the link.
            let later = ContinuousClock.now + .milliseconds(3500)
            var pongs = 0
            try await TransportHarness.eventually {
                pongs = (try? metrics.expectTimer("peat_transport_rtt_seconds").values.count) ?? 0
                return ContinuousClock.now > later && pongs > 3
            }
            #expect(a.connectedPeers == [b.localIdentity])
        }
    }

    @Test func reportsRoundTripTime() async throws {
        let a = try TransportHarness.transport("peat-mesh-0")
        let b = try TransportHarness.transport("peat-mesh-1")
        try await TransportHarness.running([a, b]) {
            let connection = try await a.connect(to: try await b.listeningAddress(), expectedPeer: nil)
            try await TransportHarness.eventually { connection.roundTripTime != nil }
            let rtt = try #require(connection.roundTripTime)
            #expect(rtt > .zero && rtt < .seconds(5))
        }
    }
}

/// Records the errors that reach it (EmbeddedChannel runs on the test's thread).
private final class ErrorRecorder: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used only on the EmbeddedChannel's (the test's) thread.
    typealias InboundIn = NIOAny
    var errors: [any Error] = []
    func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append(error) }
}
