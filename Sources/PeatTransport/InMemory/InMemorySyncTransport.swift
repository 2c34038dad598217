import NIOConcurrencyHelpers
public import PeatIdentity
public import ServiceLifecycle

/// A process-local network of `InMemorySyncTransport`s, addressed by `PeerAddress`.
public final class InMemoryNetwork: Sendable {
    private let listeners = NIOLockedValueBox<[PeerAddress: InMemorySyncTransport]>([:])

    public init() {}

    func register(_ transport: InMemorySyncTransport, at address: PeerAddress) throws {
        try listeners.withLockedValue { listeners in
            guard listeners[address] == nil else {
                throw TransportError(code: .listenFailed, message: "\(address) is already in use on this in-memory network")
            }
            listeners[address] = transport
        }
    }

    func unregister(_ address: PeerAddress) {
        _ = listeners.withLockedValue { $0.removeValue(forKey: address) }
    }

    func listener(at address: PeerAddress) -> InMemorySyncTransport? {
        listeners.withLockedValue { $0[address] }
    }
}

/// A `SyncTransport` double for tests and embedding: no sockets, but the same formation handshake.
///
/// Both sides run the real `FormationHandshake` with their own keys and formation key, so a
/// transport with another secret is rejected exactly as over TLS. Frames travel through
/// backpressured channels (a send waits until the peer reads).
public final class InMemorySyncTransport: SyncTransport, Service {
    public let localIdentity: PeerIdentity
    public let inboundConnections: AsyncStream<any SyncConnection>

    /// Where this transport listens on its network.
    public let address: PeerAddress
    let formationKey: FormationKey
    let maximumPayloadSize: Int
    private let network: InMemoryNetwork
    private let inboundContinuation: AsyncStream<any SyncConnection>.Continuation
    /// The open connection to each peer device, and when it was made (one per peer, as over TLS).
    private let connections = NIOLockedValueBox<[DeviceID: (connection: InMemorySyncConnection, since: ContinuousClock.Instant)]>([:])
    private let simultaneousDial: SimultaneousDialPolicy
    /// The sync protocol versions this transport speaks; a connection runs the newest both ends do.
    let protocolVersions: [SyncProtocolVersion]

    /// Creates a transport that listens at `address` on `network` while it runs.
    /// - Parameters:
    ///   - simultaneousDial: Which connection survives when two devices dial each other (as
    ///     `TLSSyncTransport` decides it).
    ///   - protocolVersions: The sync protocol versions offered (as ALPN offers them over TLS).
    public init(
        keypair: DeviceKeypair, formationKey: FormationKey, address: PeerAddress, network: InMemoryNetwork,
        maximumPayloadSize: Int = Frame.defaultMaximumPayloadSize, simultaneousDial: SimultaneousDialPolicy = SimultaneousDialPolicy(),
        protocolVersions: [SyncProtocolVersion] = SyncProtocolVersion.allCases
    ) {
        self.simultaneousDial = simultaneousDial
        self.protocolVersions = protocolVersions
        localIdentity = PeerIdentity(publicKey: keypair.publicKey)
        self.formationKey = formationKey
        self.address = address
        self.network = network
        self.maximumPayloadSize = maximumPayloadSize
        (inboundConnections, inboundContinuation) = AsyncStream.makeStream(of: (any SyncConnection).self, bufferingPolicy: .bufferingOldest(64))
    }

    /// Listens until graceful shutdown or cancellation, then closes every connection.
    public func run() async throws {
        try network.register(self, at: address)
        defer {
            network.unregister(address)
            let open = connections.withLockedValue { open in
                defer { open = [:] }
                return open.values.map(\.connection)
            }
            for connection in open { connection.closeBothEnds() }
            inboundContinuation.finish()
        }
        try? await gracefulShutdown()
    }

    public func connect(to address: PeerAddress, expectedPeer: DeviceID?) async throws -> any SyncConnection {
        guard let listener = network.listener(at: address) else {
            throw TransportError(code: .connectFailed, message: "nothing listens at \(address) on this in-memory network")
        }
        var initiator = FormationHandshake(
            role: .initiator, localKey: localIdentity.publicKey, formationKey: formationKey, expectedPeer: expectedPeer,
            versions: protocolVersions)
        var responder = FormationHandshake(
            role: .responder, localKey: listener.localIdentity.publicKey, formationKey: listener.formationKey, expectedPeer: nil,
            versions: listener.protocolVersions)
        // ALPN: the newest version both offer, or none.
        let negotiated = Set(protocolVersions).intersection(listener.protocolVersions).max()
        let outcome = Self.runHandshake(
            &initiator, &responder, negotiated: negotiated, initiatorKey: localIdentity.publicKey,
            responderKey: listener.localIdentity.publicKey)
        guard case .authenticated(let responderPeer) = outcome.initiator,
            case .authenticated(let initiatorPeer) = outcome.responder
        else {
            throw Self.failure(outcome.initiator) ?? Self.failure(outcome.responder)
                ?? TransportError(code: .handshakeFailed, message: "the handshake did not complete")
        }
        let (local, remote) = InMemorySyncConnection.pair(
            initiator: (initiatorPeer, self.address.description), responder: (responderPeer, address.description),
            maximumPayloadSize: min(maximumPayloadSize, listener.maximumPayloadSize), version: negotiated ?? .v1)
        // One connection per pair of devices, decided as over TLS: both ends of a connection are
        // made here at once, so both sides reach the same verdict.
        guard keeps(local), listener.keeps(remote) else {
            local.closeBothEnds()
            throw TransportError(code: .duplicateConnection, message: "already connected to device \(responderPeer.deviceID)", peer: responderPeer)
        }
        track(local)
        listener.track(remote)
        if case .dropped = listener.inboundContinuation.yield(remote) {
            remote.closeBothEnds()
        }
        return local
    }

    /// The connections this transport holds, one per peer device (closed ones included until replaced).
    var openConnections: [InMemorySyncConnection] {
        connections.withLockedValue { $0.values.map(\.connection).filter { !$0.isClosed } }
    }

    /// Whether `connection` may replace the one this transport holds to the same device, if any.
    private func keeps(_ connection: InMemorySyncConnection) -> Bool {
        connections.withLockedValue { open in
            let existing = open[connection.peer.deviceID].flatMap { $0.connection.isClosed ? nil : ($0.connection.role, ConnectionPath.direct, $0.since) }
            return simultaneousDial.admits(
                newRole: connection.role, existing: existing, now: .now, local: localIdentity.deviceID, peer: connection.peer.deviceID)
        }
    }

    private func track(_ connection: InMemorySyncConnection) {
        let replaced = connections.withLockedValue { open in
            defer { open[connection.peer.deviceID] = (connection, .now) }
            return open[connection.peer.deviceID]?.connection
        }
        replaced?.closeBothEnds()
    }

    /// Delivers every frame between the two state machines; returns each side's last action.
    private static func runHandshake(
        _ initiator: inout FormationHandshake, _ responder: inout FormationHandshake, negotiated: SyncProtocolVersion?,
        initiatorKey: DevicePublicKey, responderKey: DevicePublicKey
    ) -> (initiator: FormationHandshake.Action, responder: FormationHandshake.Action) {
        var lastInitiator = initiator.tlsHandshakeCompleted(negotiatedProtocol: negotiated?.alpn, peerKey: responderKey)
        var lastResponder = responder.tlsHandshakeCompleted(negotiatedProtocol: negotiated?.alpn, peerKey: initiatorKey)
        // Each round delivers what each side just sent; a side that failed sends nothing more.
        for _ in 0..<2 {
            let toResponder = lastInitiator
            let toInitiator = lastResponder
            if case .send(let frame) = toResponder, !lastResponder.isFailure { lastResponder = responder.received(frame) }
            if case .send(let frame) = toInitiator, !lastInitiator.isFailure { lastInitiator = initiator.received(frame) }
        }
        return (lastInitiator, lastResponder)
    }

    private static func failure(_ action: FormationHandshake.Action) -> TransportError? {
        if case .fail(let code, let message) = action { return TransportError(code: code, message: message) }
        return nil
    }
}

extension FormationHandshake.Action {
    var isFailure: Bool {
        if case .fail = self { return true }
        return false
    }
}

/// One end of an in-memory connection.
final class InMemorySyncConnection: SyncConnection {
    let peer: PeerIdentity
    let role: MembershipRole
    let remoteAddress: String
    let protocolVersion: SyncProtocolVersion
    var roundTripTime: Duration? { .zero }

    private let inbound: FrameQueue
    private let outbound: FrameQueue
    private let claim = ConnectionClaim()
    private let maximumPayloadSize: Int

    private init(
        peer: PeerIdentity, role: MembershipRole, remoteAddress: String, inbound: FrameQueue,
        outbound: FrameQueue, maximumPayloadSize: Int, version: SyncProtocolVersion
    ) {
        self.protocolVersion = version
        self.peer = peer
        self.role = role
        self.remoteAddress = remoteAddress
        self.inbound = inbound
        self.outbound = outbound
        self.maximumPayloadSize = maximumPayloadSize
    }

    /// Two connected ends: the initiator's (first) and the responder's.
    static func pair(
        initiator: (peer: PeerIdentity, address: String), responder: (peer: PeerIdentity, address: String), maximumPayloadSize: Int,
        version: SyncProtocolVersion
    ) -> (InMemorySyncConnection, InMemorySyncConnection) {
        let toResponder = FrameQueue(capacity: 64)
        let toInitiator = FrameQueue(capacity: 64)
        let initiatorEnd = InMemorySyncConnection(
            peer: responder.peer, role: .initiator, remoteAddress: responder.address, inbound: toInitiator,
            outbound: toResponder, maximumPayloadSize: maximumPayloadSize, version: version)
        let responderEnd = InMemorySyncConnection(
            peer: initiator.peer, role: .responder, remoteAddress: initiator.address, inbound: toResponder,
            outbound: toInitiator, maximumPayloadSize: maximumPayloadSize, version: version)
        return (initiatorEnd, responderEnd)
    }

    func withFrames<Result: Sendable>(
        _ body: (_ inbound: SyncInboundFrames, _ outbound: SyncFrameWriter) async throws -> Result
    ) async throws -> Result {
        try claim.takeForFrames()
        defer { closeBothEnds() }
        let inbound = inbound
        let outbound = outbound
        let maximum = maximumPayloadSize
        let frames = SyncInboundFrames { await inbound.next() }
        let writer = SyncFrameWriter { payload in
            try ConnectionClaim.checkSize(payload, maximum: maximum)
            guard await outbound.send(payload) else {
                throw TransportError(code: .connectionClosed, message: "the connection is closed")
            }
        }
        return try await body(frames, writer)
    }

    func close() async {
        closeBothEnds()
    }

    var isClosed: Bool { inbound.isFinished || outbound.isFinished }

    func closeBothEnds() {
        // Finishing both queues is the closed state: sends are refused, reads drain then end.
        inbound.finish()
        outbound.finish()
    }
}
