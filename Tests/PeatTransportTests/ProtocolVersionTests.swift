import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import PeatIdentity
import Testing

@testable import PeatTransport

/// Sync protocol versions (ALPN `peat/sync/1`, `peat/sync/2`) and dead-connection detection.
struct ProtocolVersionTests {
    static let cases: [([SyncProtocolVersion], [SyncProtocolVersion], SyncProtocolVersion?)] = [
        (SyncProtocolVersion.allCases, SyncProtocolVersion.allCases, .v2),
        ([.v1], SyncProtocolVersion.allCases, .v1),
        (SyncProtocolVersion.allCases, [.v1], .v1),
        ([.v2], [.v1], nil),
    ]

    @Test func alpnNamesRoundTrip() {
        #expect(SyncProtocolVersion.allCases.map(\.alpn) == ["peat/sync/1", "peat/sync/2"])
        #expect(SyncProtocolVersion(alpn: "peat/sync/2") == .v2)
        #expect(SyncProtocolVersion(alpn: "peat/sync/3") == nil)
        #expect(SyncProtocolVersion.current == .v2)
    }

    @Test(arguments: cases)
    func tlsPeersRunTheNewestVersionBothSpeak(dialer: [SyncProtocolVersion], listener: [SyncProtocolVersion], expected: SyncProtocolVersion?) async throws {
        let a = try TransportHarness.transport("peat-mesh-0") { $0.protocolVersions = dialer }
        let b = try TransportHarness.transport("peat-mesh-1") { $0.protocolVersions = listener }
        try await TransportHarness.running([a, b]) {
            let address = try await b.listeningAddress()
            guard let expected else {
                await #expect(throws: TransportError.self) { _ = try await a.connect(to: address, expectedPeer: nil) }
                #expect(a.connectedPeers.isEmpty)
                return
            }
            let outbound = try await a.connect(to: address, expectedPeer: nil)
            let inbound = try await TransportHarness.nextInbound(b)
            #expect(outbound.protocolVersion == expected && inbound.protocolVersion == expected)
        }
    }

    @Test(arguments: cases)
    func inMemoryPeersRunTheNewestVersionBothSpeak(dialer: [SyncProtocolVersion], listener: [SyncProtocolVersion], expected: SyncProtocolVersion?) async throws
    {
        let network = InMemoryNetwork()
        let secret = TransportHarness.secret
        let transports = [(dialer, "192.0.2.1"), (listener, "192.0.2.2")].enumerated().map { n, spec in
            InMemorySyncTransport(
                keypair: DeviceKeypair.fromSeed(secret, context: "peat-mesh-\(n)"), formationKey: FormationKey(secret: secret),
                address: PeerAddress(host: spec.1, port: 11204), network: network, protocolVersions: spec.0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for transport in transports { group.addTask { try await transport.run() } }
            defer { group.cancelAll() }
            try await TransportHarness.eventually { network.listener(at: transports[1].address) != nil }
            guard let expected else {
                await #expect(throws: TransportError.self) { _ = try await transports[0].connect(to: transports[1].address, expectedPeer: nil) }
                return
            }
            let outbound = try await transports[0].connect(to: transports[1].address, expectedPeer: nil)
            var inbound = transports[1].inboundConnections.makeAsyncIterator()
            let accepted = try #require(await inbound.next())
            #expect(outbound.protocolVersion == expected && accepted.protocolVersion == expected)
        }
    }

    /// The keepalive handlers as the TLS pipeline arranges them (the read timer below the framing,
    /// counting bytes; the write timer above it), on an embedded loop whose time the test moves.
    @Test func aSilentPeerIsDetectedWithinTheIdleTimeoutAndAnyTrafficDefersIt() throws {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        let closeReason = NIOLockedValueBox<TransportError?>(nil)
        let operations = channel.pipeline.syncOperations
        try operations.addHandler(IdleTimerHandler(.read, timeout: .seconds(15)))
        try operations.addHandler(IdleTimerHandler(.write, timeout: .seconds(5)))
        try operations.addHandler(KeepaliveHandler(roundTripTime: NIOLockedValueBox(nil), closeReason: closeReason) { _, _ in })
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 11204)).wait()
        let peer = PeerIdentity(publicKey: DeviceKeypair.fromSeed(TransportHarness.secret, context: "peat-mesh-1").publicKey)
        channel.pipeline.fireUserInboundEventTriggered(FormationHandshakeHandler.Authenticated(peer: peer, version: .v2))

        func pings() throws -> Int {
            var count = 0
            while let frame = try channel.readOutbound(as: Frame.self) {
                if frame.kind == .ping { count += 1 }
            }
            return count
        }
        #expect(try pings() == 1)  // one on authentication
        loop.advanceTime(by: .seconds(5))
        #expect(try pings() == 1)  // nothing written for the keepalive interval
        // The peer's bytes keep arriving (here a pong; on the wire any byte counts) at 10 s.
        loop.advanceTime(by: .seconds(5))
        _ = try pings()
        try channel.writeInbound(Frame(kind: .pong, payload: [UInt8](repeating: 0, count: 8)))
        loop.advanceTime(by: .milliseconds(14_900))
        #expect(channel.isActive)
        #expect(closeReason.withLockedValue { $0 } == nil)
        // Then silence: 15 s after the last byte, the connection is closed as idle.
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
        #expect(closeReason.withLockedValue { $0 }?.code == .idleTimeout)
        #expect(throws: TransportError.self) { try channel.throwIfErrorCaught() }
    }
}
