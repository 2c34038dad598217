import Foundation
import Logging
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PeatIdentity
import PeatTestSupport
import Testing

@testable import PeatTransport

@Suite(.timeLimit(.minutes(2)))
struct RelayTests {
    static let secret = try! FormationSecret(rawBytes: TransportHarness.secret)
    static let accessKey = RelayAccessKey(secret: secret)
    static let certificateHash = Array(repeating: UInt8(7), count: 32)

    // MARK: The access key

    @Test func accessKeyIsStableOneWayAndRoundTripsAsBase64() throws {
        let again = RelayAccessKey(secret: Self.secret)
        #expect(again.base64EncodedString() == Self.accessKey.base64EncodedString())
        let parsed = try RelayAccessKey(base64: "  \(Self.accessKey.base64EncodedString())\n")
        #expect(parsed.authenticationCode([[1, 2, 3]]) == Self.accessKey.authenticationCode([[1, 2, 3]]))
        // Another formation ID or secret gives another key.
        #expect(RelayAccessKey(secret: Self.secret, formationID: "other").base64EncodedString() != Self.accessKey.base64EncodedString())
        #expect(RelayAccessKey(secret: FormationSecret.generate()).base64EncodedString() != Self.accessKey.base64EncodedString())
        // It is neither the formation secret nor anything the formation key or a device key is made of.
        #expect(Self.accessKey.base64EncodedString() != Self.secret.base64EncodedString())
        #expect(!"\(Self.accessKey)".contains(Self.accessKey.base64EncodedString()))
        #expect(throws: IdentityError.self) { try RelayAccessKey(base64: "not base64!") }
        #expect(throws: IdentityError.self) { try RelayAccessKey(base64: FormationSecret.generate().base64EncodedString() + "AAAA") }
    }

    // MARK: Admission as a state machine

    private func pair(
        clientKey: RelayAccessKey = accessKey, relayKey: RelayAccessKey = accessKey, intent: RelayIntent = .listen,
        clientSeesHash: [UInt8] = certificateHash
    ) -> (client: RelayClientHandshake, server: RelayServerHandshake, keypair: DeviceKeypair) {
        let keypair = DeviceKeypair.generate()
        return (
            RelayClientHandshake(accessKey: clientKey, keypair: keypair, intent: intent, certificateHash: clientSeesHash),
            RelayServerHandshake(accessKey: relayKey, certificateHash: Self.certificateHash), keypair
        )
    }

    @Test func membersAreAdmittedAsTheirDevice() throws {
        let target = DeviceKeypair.generate().deviceID
        var (client, server, keypair) = pair(intent: .connect(target: target, token: Array(repeating: 9, count: 16)))
        guard case .send(let serverHello) = server.received(client.start()) else {
            Issue.record("no serverHello")
            return
        }
        guard case .send(let auth) = client.received(serverHello) else {
            Issue.record("no clientAuth")
            return
        }
        #expect(server.received(auth) == .admitted(peer: PeerIdentity(publicKey: keypair.publicKey), intent: client.intent))
    }

    @Test func aClientChecksTheRelayFirstAndAStrangerIsRefused() throws {
        // A relay without this formation's key (or a man in the middle with another certificate)
        // fails the client's check; the client proves nothing to it.
        var (client, server, _) = pair(relayKey: RelayAccessKey(secret: FormationSecret.generate()))
        guard case .send(let hello) = server.received(client.start()) else {
            Issue.record("no serverHello")
            return
        }
        guard case .fail(let code, _) = client.received(hello) else {
            Issue.record("accepted a foreign relay")
            return
        }
        #expect(code == .relayRefused)

        var (mitmClient, mitmServer, _) = pair(clientSeesHash: Array(repeating: 1, count: 32))
        guard case .send(let forwarded) = mitmServer.received(mitmClient.start()) else {
            Issue.record("no serverHello")
            return
        }
        guard case .fail = mitmClient.received(forwarded) else {
            Issue.record("accepted proofs bound to another certificate")
            return
        }

        // A stranger's client (another secret) answering a real relay: refused.
        var (stranger, relay, _) = pair(clientKey: RelayAccessKey(secret: FormationSecret.generate()))
        guard case .send(let serverHello) = relay.received(stranger.start()) else {
            Issue.record("no serverHello")
            return
        }
        #expect(stranger.received(serverHello) != .none)
    }

    @Test func tamperedAuthIsRefused() throws {
        for position in [0, 40, 100, 130] {
            var (client, server, _) = pair(intent: .accept(token: Array(repeating: 3, count: 16)))
            guard case .send(let hello) = server.received(client.start()), case .send(var auth) = client.received(hello) else {
                Issue.record("no handshake")
                return
            }
            auth.payload[position] ^= 0x01
            guard case .refuse(let reason, _) = server.received(auth) else {
                Issue.record("accepted a tampered byte \(position)")
                return
            }
            #expect([.notAdmitted, .protocolViolation].contains(reason))
        }
        // Frames out of order.
        var (_, server, _) = pair()
        guard case .refuse(.protocolViolation, _) = server.received(RelayFrame(kind: .clientAuth, payload: [1])) else {
            Issue.record("auth before hello accepted")
            return
        }
    }

    // MARK: The codec, hostile input

    @Test func framesDecodeIncrementallyAndRefuseOversizeAndUnknownKinds() throws {
        let frame = RelayFrame(kind: .incoming, payload: Array(0..<32))
        let bytes = frame.encoded
        for cut in 0..<bytes.count {
            var partial = ByteBuffer(bytes: bytes.prefix(cut))
            #expect(try RelayFrame.decode(from: &partial) == nil)
            #expect(partial.readableBytes == cut, "a partial frame consumes nothing")
        }
        var whole = ByteBuffer(bytes: bytes + [7])
        #expect(try RelayFrame.decode(from: &whole) == frame)
        #expect(whole.readableBytes == 1)
        var oversize = ByteBuffer(bytes: [RelayFrame.Kind.ping.rawValue, 0xFF, 0xFF])
        #expect(throws: TransportError.self) { try RelayFrame.decode(from: &oversize) }
        var unknown = ByteBuffer(bytes: [0xEE, 0, 0])
        #expect(throws: TransportError.self) { try RelayFrame.decode(from: &unknown) }
    }

    @Test func noiseNeverTrapsTheDecoderOrTheServerHandshake() {
        var random = SeededRandom(seed: 0x5EED_0016)
        for _ in 0..<2_500 {
            let count = Int.random(in: 0..<600, using: &random)
            var buffer = ByteBuffer(bytes: (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) })
            var server = RelayServerHandshake(accessKey: Self.accessKey, certificateHash: Self.certificateHash)
            while let frame = try? RelayFrame.decode(from: &buffer) {
                #expect(frame.encoded.count == RelayFrame.headerSize + frame.payload.count)
                if case .admitted = server.received(frame) { Issue.record("noise was admitted") }
            }
        }
    }

    // MARK: End to end on loopback

    static func relay(configure: (inout RelayServer.Configuration) -> Void = { _ in }) throws -> RelayServer {
        var configuration = RelayServer.Configuration(host: "127.0.0.1", port: 0, accessKey: accessKey)
        configuration.handshakeTimeout = .seconds(8)
        configure(&configuration)
        return try RelayServer(configuration: configuration, logger: debugLogger("relay"))
    }

    static func relayed(
        _ name: String, relay: RelayURL, secret: [UInt8] = TransportHarness.secret, metrics: TestMetrics = TestMetrics()
    ) throws -> TLSSyncTransport {
        var configuration = TLSSyncTransport.Configuration(host: "127.0.0.1", port: 0)
        // Generous: TLS, the upgrade, admission, pairing and the end-to-end TLS on a loaded machine.
        configuration.handshakeTimeout = .seconds(30)
        configuration.relays = [relay]
        configuration.relayAccessKey = RelayAccessKey(secret: try FormationSecret(rawBytes: secret))
        configuration.relayBackoff = ReconnectBackoff(initial: .milliseconds(50), maximum: .milliseconds(200))
        return try TLSSyncTransport(
            keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret),
            configuration: configuration, logger: debugLogger(name), metricsFactory: metrics)
    }

    /// Logs to standard error when `PEAT_TEST_LOG` is set (for debugging), else nowhere.
    static func debugLogger(_ label: String) -> Logger {
        guard ProcessInfo.processInfo.environment["PEAT_TEST_LOG"] != nil else {
            return Logger(label: label, factory: { _ in SwiftLogNoOpLogHandler() })
        }
        var logger = Logger(label: label, factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .trace
        return logger
    }

    @Test func twoNodesExchangeFramesEndToEndThroughTheRelay() async throws {
        let relay = try Self.relay()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.run() }
            let url = RelayURL(host: "127.0.0.1", port: try await relay.listeningAddress().port)
            let metrics = TestMetrics()
            let alpha = try Self.relayed("alpha", relay: url, metrics: metrics)
            let beta = try Self.relayed("beta", relay: url)
            try await TransportHarness.running([alpha, beta]) {
                try await TransportHarness.eventually { beta.listeningRelays == [url] && alpha.listeningRelays == [url] }
                defer {
                    // Sessions and bytes are counted per path (TLS records as they cross the relay).
                    #expect(metrics.counterTotal(label: "peat_transport_sessions_total", dimensions: [("path", "relay")]) == 1)
                    #expect(metrics.counterTotal(label: "peat_transport_sessions_total", dimensions: [("path", "direct")]) == 0)
                    #expect(metrics.counterTotal(label: "peat_transport_bytes_total", dimensions: [("path", "relay"), ("direction", "sent")]) > 0)
                    #expect(metrics.counterTotal(label: "peat_transport_bytes_total", dimensions: [("path", "relay"), ("direction", "received")]) > 0)
                }
                let outbound = try await alpha.connectTLS(through: url, to: beta.localIdentity.deviceID)
                let inbound = try await TransportHarness.nextInbound(beta)
                #expect(outbound.path == .relay(url) && inbound.path == .relay(url))
                #expect(outbound.peer == beta.localIdentity && inbound.peer == alpha.localIdentity)
                #expect(inbound.remoteAddress == url.description)
                let reply = try await withThrowingTaskGroup(of: [UInt8]?.self) { frames in
                    frames.addTask {
                        try await inbound.withFrames { incoming, outgoing in
                            let iterator = incoming.makeAsyncIterator()
                            let first = try await iterator.next()
                            try await outgoing.send(Array((first ?? []).reversed()))
                            return try await iterator.next()
                        }
                    }
                    let answer = try await outbound.withFrames { incoming, outgoing in
                        try await outgoing.send([1, 2, 3])
                        let iterator = incoming.makeAsyncIterator()
                        return try await iterator.next()
                    }
                    await outbound.close()
                    _ = try await frames.next()
                    return answer
                }
                #expect(reply == [3, 2, 1])
                #expect(await relay.counts().clients == 2)
            }
            group.cancelAll()
        }
    }

    @Test func aDirectConnectionReplacesTheRelayedOne() async throws {
        let relay = try Self.relay()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.run() }
            let url = RelayURL(host: "127.0.0.1", port: try await relay.listeningAddress().port)
            let alpha = try Self.relayed("alpha", relay: url)
            let beta = try Self.relayed("beta", relay: url)
            try await TransportHarness.running([alpha, beta]) {
                try await TransportHarness.eventually { beta.listeningRelays == [url] }
                let relayed = try await alpha.connectTLS(through: url, to: beta.localIdentity.deviceID)
                _ = try await TransportHarness.nextInbound(beta)
                let direct = try await alpha.connectTLS(to: try await beta.listeningAddress(), expectedPeer: beta.localIdentity.deviceID)
                try await relayed.asyncChannel.channel.closeFuture.get()
                #expect(alpha.activeConnections.map(\.path) == [.direct] && alpha.activeConnections.first === direct)
                try await TransportHarness.eventually { beta.activeConnections.map(\.path) == [.direct] }
                // And a relayed dial while the direct path holds is refused as a duplicate.
                await #expect(throws: TransportError.self) { _ = try await alpha.connectTLS(through: url, to: beta.localIdentity.deviceID) }
                #expect(alpha.activeConnections.map(\.path) == [.direct])
            }
            group.cancelAll()
        }
    }

    @Test func aStrangerGetsNothingAndAnUnknownDeviceIsRefused() async throws {
        let relay = try Self.relay()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.run() }
            let url = RelayURL(host: "127.0.0.1", port: try await relay.listeningAddress().port)
            let member = try Self.relayed("member", relay: url)
            let stranger = try Self.relayed("stranger", relay: url, secret: Array("another-formation-secret-entirely".utf8))
            try await TransportHarness.running([member, stranger]) {
                try await TransportHarness.eventually { member.listeningRelays == [url] }
                await #expect(throws: TransportError.self) {
                    _ = try await stranger.connectTLS(through: url, to: member.localIdentity.deviceID)
                }
                #expect(stranger.listeningRelays.isEmpty, "a stranger is never admitted")
                do {
                    _ = try await member.connectTLS(through: url, to: DeviceKeypair.generate().deviceID)
                    Issue.record("a session to an absent device started")
                } catch let error as TransportError {
                    #expect(error.code == .relayRefused && error.message.contains("peerUnavailable"))
                }
                #expect(member.activeConnections.isEmpty)
                #expect(await relay.counts().sessions == 0)
            }
            group.cancelAll()
        }
    }

    /// Raw bytes over TLS to the relay, as a buggy or hostile client sends them; returns what the
    /// relay answered before it closed the connection (or after `timeout`).
    static func rawExchange(_ address: PeerAddress, _ bytes: [UInt8], timeout: Duration = .seconds(20)) async throws -> (closed: Bool, reply: [UInt8]) {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        tls.verifySignatureAlgorithms = RelayClient.signatureAlgorithms
        let context = try NIOSSLContext(configuration: tls)
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: address.host, port: address.port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        let closed = try await TransportHarness.withTimeout(timeout) {
            try await channel.closeFuture.get()
            return true
        }
        return (closed, collector.bytes.withLockedValue { $0 })
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = NIOLockedValueBox<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLockedValue { $0 += buffer.readableBytesView }
        }
    }

    static let upgrade = Array("GET /peat/relay HTTP/1.1\r\nHost: relay\r\nUpgrade: peat-relay/1\r\nConnection: Upgrade\r\n\r\n".utf8)

    @Test func hostileBytesCloseThatClientOnlyAndOtherRequestsGet426() async throws {
        let relay = try Self.relay()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.run() }
            let address = try await relay.listeningAddress()
            let url = RelayURL(host: "127.0.0.1", port: address.port)
            let member = try Self.relayed("member", relay: url)
            try await TransportHarness.running([member]) {
                try await TransportHarness.eventually { member.listeningRelays == [url] }
                let plain = try await Self.rawExchange(address, Array("GET / HTTP/1.1\r\nHost: relay\r\n\r\n".utf8))
                #expect(plain.closed && String(decoding: plain.reply, as: UTF8.self).hasPrefix("HTTP/1.1 426"))
                let hello = RelayFrame(kind: .clientHello, payload: [RelayProtocol.version] + Array(repeating: 1, count: 32)).encoded
                for (name, frames) in [
                    ("unknown kind", [0xEE, 0, 0]), ("oversize length", [RelayFrame.Kind.clientAuth.rawValue, 0xFF, 0xFF]),
                    ("auth before hello", RelayFrame(kind: .clientAuth, payload: Array(repeating: 0, count: 200)).encoded),
                    ("garbage auth", hello + RelayFrame(kind: .clientAuth, payload: Array(repeating: 7, count: 161)).encoded),
                    ("version 9", RelayFrame(kind: .clientHello, payload: [9] + Array(repeating: 1, count: 32)).encoded),
                ] as [(String, [UInt8])] {
                    let answer = try await Self.rawExchange(address, Self.upgrade + frames)
                    #expect(answer.closed, "\(name): the relay closes the connection")
                    #expect(String(decoding: answer.reply, as: UTF8.self).hasPrefix("HTTP/1.1 101"), "\(name)")
                }
                // A truncated frame is never acted on; the admission deadline closes it.
                #expect(try await Self.rawExchange(address, Self.upgrade + hello.prefix(10)).closed)
                // The member's listen connection was never touched.
                #expect(member.listeningRelays == [url])
                #expect(await relay.counts().clients == 1)
            }
            group.cancelAll()
        }
    }

    @Test func byteBucketsPauseTheReaderForTheDeficitOnly() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var bucket = ByteBucket(rate: 1000, burst: 2000, now: start)
        #expect(bucket.spend(2000, now: start) == nil, "a full burst passes")
        #expect(bucket.spend(500, now: start) == .milliseconds(500), "500 bytes over at 1000 B/s: half a second")
        #expect(bucket.pause(now: start + .milliseconds(250)) == .milliseconds(250))
        #expect(bucket.pause(now: start + .milliseconds(500)) == nil)
        #expect(bucket.spend(100, now: start + .seconds(10)) == nil, "refilled, but never past the burst")
        #expect(bucket.spend(1900, now: start + .seconds(10)) == nil)
        #expect(bucket.spend(1, now: start + .seconds(10)) != nil)
    }

    @Test func aDeviceGetsNoMoreConnectionsThanItsCap() async throws {
        let relay = try Self.relay { $0.maximumConnectionsPerClient = 2 }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.run() }
            let url = RelayURL(host: "127.0.0.1", port: try await relay.listeningAddress().port)
            let alpha = try Self.relayed("alpha", relay: url)
            let beta = try Self.relayed("beta", relay: url)
            let gamma = try Self.relayed("gamma", relay: url)
            try await TransportHarness.running([alpha, beta, gamma]) {
                try await TransportHarness.eventually { [alpha, beta, gamma].allSatisfy { $0.listeningRelays == [url] } }
                // alpha: its listen connection + one session = 2, the cap.
                _ = try await alpha.connectTLS(through: url, to: beta.localIdentity.deviceID)
                do {
                    _ = try await alpha.connectTLS(through: url, to: gamma.localIdentity.deviceID)
                    Issue.record("a third connection of one device was admitted")
                } catch let error as TransportError {
                    #expect(error.code == .relayRefused && error.message.contains("limitReached"))
                }
                #expect(alpha.activeConnections.count == 1)
            }
            group.cancelAll()
        }
    }

    @Test func relayURLsParseLikeHTTPSURLs() throws {
        #expect(try RelayURL(parsing: "https://relay.example") == RelayURL(host: "relay.example", port: 443))
        #expect(try RelayURL(parsing: "HTTPS://relay:3340/") == RelayURL(host: "relay", port: 3340))
        #expect(try RelayURL(parsing: "https://[2001:db8::1]:3340") == RelayURL(host: "2001:db8::1", port: 3340))
        #expect(RelayURL(host: "2001:db8::1", port: 3340).description == "https://[2001:db8::1]:3340")
        for bad in ["http://relay:3340", "relay:3340", "https://", "https://relay:0", "https://relay:99999", "https://relay/path", "https://u@relay"] {
            #expect(throws: TransportError.self, "\(bad)") { try RelayURL(parsing: bad) }
        }
    }
}
