public import Logging
public import Metrics
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
import NIOSSL
public import PeatIdentity
public import ServiceLifecycle

/// The sync transport: TCP + TLS 1.3 with mutual Ed25519 certificate authentication, ALPN
/// `peat/sync/2` or `peat/sync/1`, and a formation membership proof bound to the session before any data.
///
/// Run it as a swift-service-lifecycle `Service`: `run()` listens until graceful shutdown or
/// cancellation, then closes every connection. `connect(to:expectedPeer:)` opens connections from
/// the caller's task. At most one connection per peer is kept (`SimultaneousDialPolicy`).
public final class TLSSyncTransport: SyncTransport, Service {
    /// Transport settings with working defaults.
    public struct Configuration: Sendable {
        /// The address to listen on.
        public var host: String
        /// The port to listen on (0: any free port; see `listeningAddress()`).
        public var port: Int
        /// The largest frame payload accepted or sent.
        public var maximumPayloadSize = Frame.defaultMaximumPayloadSize
        /// How long TLS plus the formation handshake may take.
        public var handshakeTimeout: Duration = .seconds(10)
        /// How many inbound handshakes may be in flight, in total and per address, and how long one
        /// may stay silent; past a limit a new connection is closed before any TLS work.
        public var handshakeLimits = HandshakeLimits()
        /// How long TCP connect may take.
        public var connectTimeout: Duration = .seconds(5)
        /// A connection with no inbound traffic for this long is closed: three keepalives missed.
        public var idleTimeout: Duration = .seconds(15)
        /// A ping is sent when nothing was written for this long.
        public var keepaliveInterval: Duration = .seconds(5)
        /// Sync protocol versions offered and accepted (ALPN; the newest both sides speak is used).
        public var protocolVersions: [SyncProtocolVersion] = SyncProtocolVersion.allCases
        /// Bytes written but not yet sent that a connection holds before its writer waits, in this
        /// process and in the kernel (`TCP_NOTSENT_LOWAT`) each: what a frame of higher priority may
        /// find queued ahead of it on a slow link (2 KiB each: 64 ms at 256 kbit/s).
        public var unsentBytesLimit = 2048
        /// The TCP congestion control algorithm of direct connections (`TCP_CONGESTION`, e.g. `bbr`,
        /// which does not read random radio loss as congestion); nil: the system's default. A name
        /// the kernel does not offer (or does not allow this process) is logged once and the
        /// default used.
        public var congestionControl: String?
        /// Inbound batches (the data frames of one socket read) buffered per connection before the
        /// peer is slowed down.
        public var inboundBufferFrames = 64
        /// Which connection survives when two devices dial each other.
        public var simultaneousDial = SimultaneousDialPolicy()
        /// Relays to keep a listen connection to (so peers can reach this node through them) and
        /// to dial through (`connect(through:to:)`); empty: none.
        public var relays: [RelayURL] = []
        /// The formation's relay access key (`RelayAccessKey(secret:)`); required when `relays` is
        /// not empty or `connect(through:to:)` is used.
        public var relayAccessKey: RelayAccessKey?
        /// Delays between attempts to (re)connect to a relay.
        public var relayBackoff = ReconnectBackoff()

        public init(host: String = "0.0.0.0", port: Int = 11204) {
            self.host = host
            self.port = port
        }
    }

    public let localIdentity: PeerIdentity
    public let inboundConnections: AsyncStream<any SyncConnection>

    let configuration: Configuration
    let keypair: DeviceKeypair
    private let formationKey: FormationKey
    let group: any EventLoopGroup
    let logger: Logger
    private let congestionControlWarned = NIOLockedValueBox(false)
    private let serverContext: NIOSSLContext
    private let clientContext: NIOSSLContext
    let inboundContinuation: AsyncStream<any SyncConnection>.Continuation
    private let bound: EventLoopPromise<SocketAddress>
    let metrics: TransportMetrics
    let state: NIOLockedValueBox<State>

    struct State {
        var connections: [DeviceID: (connection: TLSSyncConnection, since: ContinuousClock.Instant)] = [:]
        /// Relays with an admitted listen connection right now.
        var listeningRelays: Set<RelayURL> = []
        /// Every open channel, authenticated or still in its handshake: closed at shutdown.
        var channels: [ObjectIdentifier: any Channel] = [:]
        var loggedRejections: Set<String> = []
        var closed = false
        /// Inbound connections accepted and not yet authenticated.
        var admission: HandshakeAdmission
    }

    /// Creates a transport for this device.
    /// - Parameters:
    ///   - keypair: The device key; its certificate is presented to peers.
    ///   - formationKey: The formation key every member holds.
    ///   - configuration: Addresses, limits and timeouts.
    ///   - group: The event loops to run on.
    ///   - logger: Where rejections and failures are logged (once per peer address and reason); by
    ///     default nowhere.
    ///   - metricsFactory: Where connection, rejection and round-trip-time metrics go (default:
    ///     `MetricsSystem.factory`, whatever the executable bootstrapped).
    public init(
        keypair: DeviceKeypair,
        formationKey: FormationKey,
        configuration: Configuration = Configuration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "peat.transport", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws {
        self.localIdentity = PeerIdentity(publicKey: keypair.publicKey)
        self.keypair = keypair
        self.formationKey = formationKey
        self.configuration = configuration
        self.group = group
        self.logger = logger
        let (certificate, privateKey) = try DeviceCertificate.make(for: keypair)
        serverContext = try TLSContextFactory.make(certificate: certificate, privateKey: privateKey, server: true, versions: configuration.protocolVersions)
        clientContext = try TLSContextFactory.make(certificate: certificate, privateKey: privateKey, server: false, versions: configuration.protocolVersions)
        (inboundConnections, inboundContinuation) = AsyncStream.makeStream(of: (any SyncConnection).self, bufferingPolicy: .bufferingOldest(64))
        bound = group.next().makePromise(of: SocketAddress.self)
        metrics = TransportMetrics(factory: metricsFactory)
        state = NIOLockedValueBox(State(admission: HandshakeAdmission(limits: configuration.handshakeLimits)))
    }

    deinit {
        // A transport dropped without ever running still settles `listeningAddress()` waiters
        // (a no-op when `run()` already bound or failed).
        bound.fail(TransportError(code: .transportClosed, message: "the transport was released without listening"))
    }

    /// Waits until the listener is bound and returns its address.
    /// - Throws: `TransportError` with `.listenFailed` if binding failed.
    public func listeningAddress() async throws -> PeerAddress {
        let address = try await bound.futureResult.get()
        return PeerAddress(host: address.ipAddress ?? configuration.host, port: address.port ?? configuration.port)
    }

    /// The peers this transport currently holds a connection to.
    public var connectedPeers: [PeerIdentity] {
        activeConnections.map(\.peer)
    }

    /// The current connections, one per peer.
    public var activeConnections: [TLSSyncConnection] {
        state.withLockedValue { $0.connections.values.map(\.connection) }
    }

    /// Inbound connections accepted and still in their handshake (counted against `HandshakeLimits`).
    var pendingHandshakes: Int { state.withLockedValue { $0.admission.pending } }

    /// Channels with a pipeline: authenticated or handshaking (refused ones never get one).
    var openChannelCount: Int { state.withLockedValue { $0.channels.count } }

    // MARK: Listening

    public func run() async throws {
        let server: NIOAsyncChannel<PendingConnection, Never>
        do {
            let onAcceptFailure: @Sendable (any Error) -> Void = { [weak self] error in
                self?.report(
                    rejection: TransportError(code: .connectionClosed, message: "an accepted connection could not be set up", cause: error),
                    address: "unknown", role: .responder)
            }
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // TCP level: `.socketOption(.tcp_nodelay)` would be SOL_SOCKET option 1, SO_DEBUG,
                // which needs CAP_NET_ADMIN (refused in any container).
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptFailureHandler(report: onAcceptFailure))
                        try channel.pipeline.syncOperations.addHandler(HandshakeAdmissionHandler { [weak self] in self?.admit($0) ?? false })
                    }
                }
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try self.configure(channel: channel, role: .responder, expectedPeer: nil)
                    }
                }
        } catch {
            let failure = TransportError(
                code: .listenFailed, message: "cannot listen on \(PeerAddress(host: configuration.host, port: configuration.port))",
                cause: error)
            bound.fail(failure)
            throw failure
        }
        if let address = server.channel.localAddress {
            bound.succeed(address)
            let shown = PeerAddress(host: address.ipAddress ?? configuration.host, port: address.port ?? configuration.port)
            logger.info(
                "Sync transport listening",
                metadata: ["address": "\(shown)", "alpn": "\(SyncProtocolVersion.alpns(configuration.protocolVersions).joined(separator: ","))"])
        }
        // However the listener ends (shutdown, cancellation, error), every connection is closed.
        defer { shutdown() }
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await server.executeThenClose { pendingConnections in
                try await withThrowingDiscardingTaskGroup { tasks in
                    for relay in configuration.relays {
                        tasks.addTask { await self.listen(on: relay) }
                    }
                    for try await pending in pendingConnections {
                        tasks.addTask { await self.completeInbound(pending) }
                    }
                    tasks.cancelAll()
                }
            }
        } onCancelOrGracefulShutdown: {
            server.channel.close(promise: nil)
            self.closeAll()
        }
    }

    /// Closes everything and ends the streams.
    private func shutdown() {
        closeAll()
        inboundContinuation.finish()
    }

    /// Refuses new channels, closes every connection (recording why) and every handshake in flight,
    /// so stopping never waits for a handshake timeout.
    private func closeAll() {
        let (connections, channels) = state.withLockedValue { state in
            state.closed = true
            defer { state.connections = [:] }
            return (state.connections.values.map(\.connection), Array(state.channels.values))
        }
        for connection in connections {
            connection.close(reason: TransportError(code: .transportClosed, message: "the transport shut down"))
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Tracks a new channel until it closes; one opened after shutdown is closed at once.
    func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        let open = state.withLockedValue { state in
            guard !state.closed else { return false }
            state.channels[key] = channel
            return true
        }
        guard open else {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLockedValue { $0.channels.removeValue(forKey: key) }
        }
    }

    /// Counts an accepted connection against the handshake limits until it is authenticated or
    /// closed; past a limit it is refused (and closed by the caller, before any TLS work).
    private func admit(_ channel: any Channel) -> Bool {
        enum Outcome {
            case admitted, refused(HandshakeAdmission.Refusal), shutDown
        }
        let key = ObjectIdentifier(channel)
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let outcome = state.withLockedValue { state -> Outcome in
            guard !state.closed else { return .shutDown }
            return state.admission.admit(key, from: address).map(Outcome.refused) ?? .admitted
        }
        switch outcome {
        case .shutDown:
            return false
        case .refused(let refusal):
            let message =
                switch refusal {
                case .total(let limit): "\(limit) handshakes already in flight"
                case .perAddress(let limit): "\(limit) handshakes already in flight from this address"
                }
            report(
                rejection: TransportError(code: .tooManyHandshakes, message: message),
                address: channel.remoteAddress.map { "\($0)" } ?? "unknown", role: .responder)
            return false
        case .admitted:
            channel.closeFuture.whenComplete { [weak self] _ in self?.releaseAdmission(key) }
            return true
        }
    }

    private func releaseAdmission(_ key: ObjectIdentifier) {
        state.withLockedValue { $0.admission.release(key) }
    }

    private func completeInbound(_ pending: PendingConnection) async {
        do {
            let connection = try await authenticate(pending, role: .responder)
            if case .dropped = inboundContinuation.yield(connection) {
                connection.close(reason: TransportError(code: .connectionClosed, message: "too many unclaimed inbound connections"))
            }
        } catch {
            // Rejected and already reported; the channel is closed.
        }
    }

    // MARK: Dialling

    public func connect(to address: PeerAddress, expectedPeer: DeviceID?) async throws -> any SyncConnection {
        try await connectTLS(to: address, expectedPeer: expectedPeer)
    }

    /// Like `connect(to:expectedPeer:)`, returning the concrete connection type.
    public func connectTLS(to address: PeerAddress, expectedPeer: DeviceID?) async throws -> TLSSyncConnection {
        guard !state.withLockedValue(\.closed) else {
            throw TransportError(code: .transportClosed, message: "the transport shut down")
        }
        let pending: PendingConnection
        do {
            pending = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(configuration.connectTimeout.nanoseconds))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try self.configure(channel: channel, role: .initiator, expectedPeer: expectedPeer)
                    }
                }
        } catch {
            let failure = TransportError(code: .connectFailed, message: "cannot connect to \(address)", cause: error)
            report(rejection: failure, address: address.description, role: .initiator)
            throw failure
        }
        return try await authenticate(pending, role: .initiator)
    }

    // MARK: Pipeline

    /// What a new channel's initializer produces: the wrapped channel and its handshake result.
    ///
    /// NIO can drop one unread: a listener closing while accepted connections are still buffered,
    /// or a dial cancelled mid-connect (swift-nio#2637). An unfinished `NIOAsyncChannel` writer traps
    /// when released, so a pending connection nobody took releases its channel itself.
    final class PendingConnection: Sendable {
        let asyncChannel: NIOAsyncChannel<[[UInt8]], Frame>
        let authenticated: EventLoopFuture<FormationHandshakeHandler.Authenticated>
        let roundTripTime: NIOLockedValueBox<Duration?>
        let closeReason: NIOLockedValueBox<TransportError?>
        let remoteAddress: String
        let path: ConnectionPath
        /// Taken when the channel is handed to a `TLSSyncConnection` or released after a failure.
        let handOver = ConnectionClaim()

        init(
            asyncChannel: NIOAsyncChannel<[[UInt8]], Frame>, authenticated: EventLoopFuture<FormationHandshakeHandler.Authenticated>,
            roundTripTime: NIOLockedValueBox<Duration?>, closeReason: NIOLockedValueBox<TransportError?>, remoteAddress: String,
            path: ConnectionPath
        ) {
            self.path = path
            self.asyncChannel = asyncChannel
            self.authenticated = authenticated
            self.roundTripTime = roundTripTime
            self.closeReason = closeReason
            self.remoteAddress = remoteAddress
        }

        deinit {
            if handOver.take() { asyncChannel.finishUnused() }
        }
    }

    /// Adds the sync pipeline (TLS, the formation handshake, framing, keepalive) to `channel`: a
    /// TCP connection, or a relayed session (after the relay's handlers, so these run end to end).
    func configure(channel: any Channel, role: MembershipRole, expectedPeer: DeviceID?, path: ConnectionPath = .direct) throws -> PendingConnection {
        if path == .direct { track(channel) }
        limitUnsentBytes(channel)
        if path == .direct { setCongestionControl(channel) }
        let operations = channel.pipeline.syncOperations
        // The peer's certificate as this TLS handler saw it (a relayed channel has the relay's TLS
        // handler too, whose certificate is the relay's).
        let peerCertificate = NIOLockedValueBox<NIOSSLCertificate?>(nil)
        let verify: NIOSSLCustomVerificationCallback = { chain, promise in
            peerCertificate.withLockedValue { $0 = chain.first }
            promise.succeed(TLSContextFactory.verify(chain))
        }
        let gate = AuthenticationGate()
        let counters = metrics.bytes(path: path)
        try operations.addHandler(ByteCountingHandler(received: counters.received, sent: counters.sent))
        // The idle timeout counts bytes off the wire, not whole frames: on a slow link one large frame
        // may take longer to arrive than the timeout, and the peer is alive while its bytes arrive.
        try operations.addHandler(IdleTimerHandler(.read, timeout: .nanoseconds(configuration.idleTimeout.nanoseconds)))
        try operations.addHandler(
            HandshakeIdleHandler(timeout: .nanoseconds(configuration.handshakeLimits.idleTimeout.nanoseconds), gate: gate))
        if role == .responder {
            try operations.addHandler(NIOSSLServerHandler(context: serverContext, customVerificationCallback: verify))
        } else {
            try operations.addHandler(try NIOSSLClientHandler(context: clientContext, serverHostname: nil, customVerificationCallback: verify))
        }
        let authenticated = channel.eventLoop.makePromise(of: FormationHandshakeHandler.Authenticated.self)
        let roundTripTime = NIOLockedValueBox<Duration?>(nil)
        let closeReason = NIOLockedValueBox<TransportError?>(nil)
        let handshake = FormationHandshake(
            role: role, localKey: localIdentity.publicKey, formationKey: formationKey, expectedPeer: expectedPeer,
            versions: configuration.protocolVersions)
        try operations.addHandler(ByteToMessageHandler(FrameDecoder(maximumPayloadSize: configuration.maximumPayloadSize, gate: gate)))
        try operations.addHandler(MessageToByteHandler(FrameEncoder()))
        try operations.addHandler(
            FormationHandshakeHandler(
                handshake: handshake, timeout: .nanoseconds(configuration.handshakeTimeout.nanoseconds), authenticated: authenticated,
                gate: gate, peerCertificate: { peerCertificate.withLockedValue { $0 } }))
        try operations.addHandler(
            IdleTimerHandler(.write, timeout: .nanoseconds(configuration.keepaliveInterval.nanoseconds)))
        let metrics = metrics
        try operations.addHandler(
            KeepaliveHandler(roundTripTime: roundTripTime, closeReason: closeReason) { _, rtt in
                metrics.roundTripTime.recordNanoseconds(rtt.nanoseconds)
            })
        try operations.addHandler(DataFrameBatcher())
        // Watermarks count batches (the frames of one read each), so memory stays bounded.
        let high = max(configuration.inboundBufferFrames, 2)
        let asyncChannel = try NIOAsyncChannel<[[UInt8]], Frame>(
            wrappingChannelSynchronously: channel,
            configuration: .init(backPressureStrategy: .init(lowWatermark: high / 2, highWatermark: high)))
        let remoteAddress =
            switch path {
            case .direct: channel.remoteAddress.map { "\($0)" } ?? "unknown"
            case .relay(let url): url.description
            }
        return PendingConnection(
            asyncChannel: asyncChannel, authenticated: authenticated.futureResult, roundTripTime: roundTripTime,
            closeReason: closeReason, remoteAddress: remoteAddress, path: path)
    }

    /// Sets `configuration.congestionControl` on a direct connection's socket; a failure is logged
    /// once per transport and the kernel's default stays.
    private func setCongestionControl(_ channel: any Channel) {
        guard let name = configuration.congestionControl, let provider = channel as? any SocketOptionProvider else { return }
        // TCP_CA_NAME_MAX (16) bytes, NUL-terminated, as the kernel reads the option.
        var bytes = Array(name.utf8.prefix(15)).map { CChar(bitPattern: $0) }
        bytes += [CChar](repeating: 0, count: 16 - bytes.count)
        let value = (
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12],
            bytes[13], bytes[14], bytes[15]
        )
        let tcpCongestion: CInt = 13  // TCP_CONGESTION (Linux)
        let logger = logger
        let warned = congestionControlWarned
        provider.unsafeSetSocketOption(level: NIOBSDSocket.OptionLevel.tcp, name: NIOBSDSocket.Option(rawValue: tcpCongestion), value: value)
            .whenFailure { error in
                let first = warned.withLockedValue { alreadyWarned in
                    defer { alreadyWarned = true }
                    return !alreadyWarned
                }
                guard first else { return }
                logger.warning(
                    "TCP congestion control not available; using the system default",
                    metadata: ["tcp.congestion": "\(name)", "reason": "\(error)"])
            }
    }

    /// Keeps what waits to be sent small, so the session's next frame is chosen (by priority) late:
    /// the kernel reports the socket writable only below `unsentBytesLimit` unsent bytes, and the
    /// channel turns unwritable (suspending the writer) above it.
    private func limitUnsentBytes(_ channel: any Channel) {
        let limit = max(configuration.unsentBytesLimit, 1024)
        guard let options = channel.syncOptions else { return }
        try? options.setOption(.writeBufferWaterMark, value: .init(low: limit / 2, high: limit))
        let notSentLowWatermark: CInt = 25  // TCP_NOTSENT_LOWAT (Linux)
        try? options.setOption(.tcpOption(.init(rawValue: notSentLowWatermark)), value: limit)
    }

    /// Waits for the formation handshake, then registers the connection (one per peer).
    func authenticate(_ pending: PendingConnection, role: MembershipRole) async throws -> TLSSyncConnection {
        let authenticated: FormationHandshakeHandler.Authenticated
        do {
            authenticated = try await pending.authenticated.get()
        } catch {
            let failure =
                (error as? TransportError)
                ?? TransportError(code: .handshakeFailed, message: "the handshake failed", cause: error)
            report(rejection: failure, address: pending.remoteAddress, role: role)
            if pending.handOver.take() { pending.asyncChannel.finishUnused() }
            throw failure
        }
        // From here the connection owns the channel (and releases it if unused).
        _ = pending.handOver.take()
        if role == .responder { releaseAdmission(ObjectIdentifier(pending.asyncChannel.channel)) }
        let remoteAddress =
            pending.path == .direct ? pending.asyncChannel.channel.remoteAddress.map { "\($0)" } ?? pending.remoteAddress : pending.remoteAddress
        let connection = TLSSyncConnection(
            peer: authenticated.peer, role: role, remoteAddress: remoteAddress, path: pending.path, version: authenticated.version,
            asyncChannel: pending.asyncChannel,
            maximumPayloadSize: configuration.maximumPayloadSize, roundTripTime: pending.roundTripTime,
            closeReason: pending.closeReason)
        try register(connection)
        return connection
    }

    private func register(_ connection: TLSSyncConnection) throws {
        let now = ContinuousClock.now
        let policy = configuration.simultaneousDial
        let local = localIdentity.deviceID
        enum Outcome {
            case accepted(replaced: TLSSyncConnection?)
            case rejected, closed
        }
        let outcome: Outcome = state.withLockedValue { state in
            guard !state.closed else { return .closed }
            let peerID = connection.peer.deviceID
            let existing = state.connections[peerID]
            guard
                policy.admits(
                    newRole: connection.role, newPath: connection.path,
                    existing: existing.map { ($0.connection.role, $0.connection.path, $0.since) }, now: now, local: local, peer: peerID)
            else { return .rejected }
            state.connections[peerID] = (connection, now)
            return .accepted(replaced: existing?.connection)
        }
        switch outcome {
        case .closed:
            connection.close(reason: TransportError(code: .transportClosed, message: "the transport shut down"))
            throw TransportError(code: .transportClosed, message: "the transport shut down")
        case .rejected:
            let reason = TransportError(
                code: .duplicateConnection, message: "already connected to device \(connection.peer.deviceID)", peer: connection.peer)
            connection.close(reason: reason)
            throw reason
        case .accepted(let replaced):
            replaced?.close(
                reason: TransportError(
                    code: .duplicateConnection, message: "replaced by a newer connection to device \(connection.peer.deviceID)"))
            metrics.connected.increment()
            metrics.connected(path: connection.path)
            connection.asyncChannel.channel.closeFuture.whenComplete { [weak self] _ in
                self?.unregister(connection)
            }
        }
    }

    private func unregister(_ connection: TLSSyncConnection) {
        state.withLockedValue { state in
            if state.connections[connection.peer.deviceID]?.connection === connection {
                state.connections[connection.peer.deviceID] = nil
            }
        }
        metrics.disconnected.increment()
    }

    /// Reports a failed connection: counted by reason always, logged once per address and reason.
    func report(rejection: TransportError, address: String, role: MembershipRole) {
        metrics.rejected(rejection.code, role: role)
        let host = address.split(separator: ":").dropLast().joined(separator: ":")
        let key = "\(host)|\(rejection.code)"
        let first = state.withLockedValue { state in
            if state.loggedRejections.count > 4096 { state.loggedRejections.removeAll() }
            return state.loggedRejections.insert(key).inserted
        }
        var metadata: Logger.Metadata = ["peer.address": "\(address)", "reason": "\(rejection.code)", "detail": "\(rejection.message)"]
        // The underlying error (refused, unreachable, permission denied, a TLS alert) says why.
        if let cause = rejection.cause { metadata["cause"] = "\(cause)" }
        logger.log(level: first ? .warning : .debug, "Connection rejected", metadata: metadata)
    }
}
