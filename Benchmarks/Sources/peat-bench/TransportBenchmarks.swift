import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import PeatIdentity
import PeatTransport
import SwiftASN1
import X509

/// Throughput over one connection and handshake latency, `TLSSyncTransport` against a bare
/// swift-nio-ssl TLS 1.3 connection (same Ed25519 certificates, same async channel API, no
/// framing, no formation proof, no keepalive) in the same run, on loopback.
enum TransportBenchmarks {
    static let secret = Array("formation-shared-secret-from-k8s-secret".utf8)

    static func run() async throws {
        for (size, count) in [(1024, 100_000), (64 * 1024, 16_000)] {
            // Best of three alternating runs of each, to damp scheduling noise on 2 cores.
            var ours = Double.infinity
            var bare = Double.infinity
            for _ in 0..<3 {
                ours = min(ours, try await oursThroughput(size: size, count: count))
                bare = min(bare, try await bareThroughput(size: size, count: count))
            }
            let megabytes = Double(size * count) / 1_048_576
            emit(
                #"RESULT {"workload":"transport_throughput_\#(size)B","frames":\#(count),"ours_frames_per_s":\#(Int(Double(count) / ours)),"ours_mb_per_s":\#(Int(megabytes / ours)),"baseline":"bare swift-nio-ssl TLS 1.3","baseline_frames_per_s":\#(Int(Double(count) / bare)),"baseline_mb_per_s":\#(Int(megabytes / bare)),"ratio":\#(((bare / ours) * 1000).rounded() / 1000)}"#
            )
        }
        let oursHandshake = try await oursHandshakes(count: 200)
        let bareHandshake = try await bareHandshakes(count: 200)
        emit(
            #"RESULT {"workload":"transport_handshake","ours_ms":\#(milliseconds(oursHandshake)),"baseline":"bare TLS 1.3 handshake","baseline_ms":\#(milliseconds(bareHandshake)),"ratio":\#(((bareHandshake / oursHandshake) * 1000).rounded() / 1000)}"#
        )
    }

    static func milliseconds(_ seconds: Double) -> Double { (seconds * 100_000).rounded() / 100 }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: Ours

    static func transports() throws -> (TLSSyncTransport, TLSSyncTransport) {
        func make(_ name: String) throws -> TLSSyncTransport {
            var configuration = TLSSyncTransport.Configuration(host: "127.0.0.1", port: 0)
            configuration.maximumPayloadSize = 1 << 20
            return try TLSSyncTransport(
                keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret),
                configuration: configuration)
        }
        return (try make("bench-a"), try make("bench-b"))
    }

    /// Seconds to send `count` frames of `size` bytes one way and get a one-byte acknowledgement.
    static func oursThroughput(size: Int, count: Int) async throws -> Double {
        let (a, b) = try transports()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            let address = try await b.listeningAddress()
            group.addTask { try await acknowledgeFirstInbound(on: b, after: count) }
            let connection = try await a.connect(to: address, expectedPeer: nil)
            let payload = [UInt8](repeating: 0x5a, count: size)
            let clock = ContinuousClock()
            let elapsed = try await clock.measure {
                try await connection.withFrames { frames, writer in
                    for _ in 0..<count { try await writer.send(payload) }
                    var iterator = frames.makeAsyncIterator()
                    _ = try await iterator.next()
                }
            }
            group.cancelAll()
            return seconds(elapsed)
        }
    }

    /// Takes `transport`'s first inbound connection, reads `count` frames and answers one byte.
    static func acknowledgeFirstInbound(on transport: TLSSyncTransport, after count: Int) async throws {
        for await connection in transport.inboundConnections {
            try await connection.withFrames { frames, writer in
                var received = 0
                for try await _ in frames {
                    received += 1
                    if received == count {
                        try await writer.send([1])
                        break
                    }
                }
            }
            return
        }
    }

    static func oursHandshakes(count: Int) async throws -> Double {
        let (a, b) = try transports()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            group.addTask { for await connection in b.inboundConnections { await connection.close() } }
            let address = try await b.listeningAddress()
            let clock = ContinuousClock()
            var total = Duration.zero
            for _ in 0..<count {
                let start = clock.now
                let connection = try await a.connect(to: address, expectedPeer: nil)
                total += start.duration(to: clock.now)
                await connection.close()
            }
            group.cancelAll()
            return seconds(total) / Double(count)
        }
    }

    // MARK: Bare swift-nio-ssl baseline

    static func bareContexts() throws -> (server: NIOSSLContext, client: NIOSSLContext) {
        let key = Certificate.PrivateKey(Curve25519.Signing.PrivateKey())
        let name = try DistinguishedName { CommonName("bench") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(3600),
            issuer: name, subject: name, signatureAlgorithm: .ed25519, extensions: .init(), issuerPrivateKey: key)
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let nioCertificate = try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
        let nioKey = try NIOSSLPrivateKey(bytes: Array(try key.serializeAsPEM().pemString.utf8), format: .pem)
        func configure(_ configuration: inout TLSConfiguration) {
            configuration.minimumTLSVersion = .tlsv13
            configuration.certificateVerification = .noHostnameVerification
            configuration.verifySignatureAlgorithms = [.ed25519]
            configuration.signingSignatureAlgorithms = [.ed25519]
            configuration.applicationProtocols = ["peat/sync/1"]
            configuration.trustRoots = .certificates([nioCertificate])
        }
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(nioCertificate)], privateKey: .privateKey(nioKey))
        configure(&server)
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = [.certificate(nioCertificate)]
        client.privateKey = .privateKey(nioKey)
        configure(&client)
        return (try NIOSSLContext(configuration: server), try NIOSSLContext(configuration: client))
    }

    typealias ByteChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func bareServer(_ context: NIOSSLContext) async throws -> NIOAsyncChannel<ByteChannel, Never> {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLServerHandler(context: context) { _, promise in promise.succeed(.certificateVerified) })
                    return try ByteChannel(wrappingChannelSynchronously: channel)
                }
            }
    }

    static func bareClient(_ context: NIOSSLContext, port: Int) async throws -> (ByteChannel, EventLoopFuture<Void>) {
        let handshake = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: context, serverHostname: nil) { _, promise in promise.succeed(.certificateVerified) })
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: handshake))
                    return try ByteChannel(wrappingChannelSynchronously: channel)
                }
            }
        return (channel, handshake.futureResult)
    }

    final class HandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<Void>
        init(promise: EventLoopPromise<Void>) { self.promise = promise }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { promise.succeed(()) }
            context.fireUserInboundEventTriggered(event)
        }
        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
            context.fireChannelInactive()
        }
    }

    static func bareThroughput(size: Int, count: Int) async throws -> Double {
        let (serverContext, clientContext) = try bareContexts()
        let server = try await bareServer(serverContext)
        let port = server.channel.localAddress!.port!
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.executeThenClose { inbound in
                    for try await child in inbound {
                        try await child.executeThenClose { bytes, writer in
                            var received = 0
                            for try await buffer in bytes {
                                received += buffer.readableBytes
                                if received >= size * count {
                                    try await writer.write(ByteBuffer(bytes: [1]))
                                    break
                                }
                            }
                        }
                        return
                    }
                }
            }
            let (client, handshake) = try await bareClient(clientContext, port: port)
            try await handshake.get()
            let payload = ByteBuffer(repeating: 0x5a, count: size)
            let clock = ContinuousClock()
            let elapsed = try await clock.measure {
                try await client.executeThenClose { inbound, writer in
                    for _ in 0..<count { try await writer.write(payload) }
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await iterator.next()
                }
            }
            try await group.next()
            return seconds(elapsed)
        }
    }

    static func bareHandshakes(count: Int) async throws -> Double {
        let (serverContext, clientContext) = try bareContexts()
        let server = try await bareServer(serverContext)
        let port = server.channel.localAddress!.port!
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.executeThenClose { inbound in
                    for try await child in inbound {
                        // Hold the connection until the client closes it after its handshake.
                        try? await child.executeThenClose { bytes, _ in for try await _ in bytes {} }
                    }
                }
            }
            let clock = ContinuousClock()
            var total = Duration.zero
            for _ in 0..<count {
                let start = clock.now
                let (client, handshake) = try await bareClient(clientContext, port: port)
                try await handshake.get()
                total += start.duration(to: clock.now)
                try await client.executeThenClose { _, _ in }
            }
            server.channel.close(promise: nil)
            group.cancelAll()
            return seconds(total) / Double(count)
        }
    }
}
