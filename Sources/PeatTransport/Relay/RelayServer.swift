import Crypto
public import Logging
public import Metrics
import NIOConcurrencyHelpers
public import NIOCore
import NIOHTTP1
public import NIOPosix
import NIOSSL
public import PeatIdentity
public import ServiceLifecycle

/// The relay: lets formation members that cannot reach each other (NAT, another site, another
/// cluster) open sessions through it.
///
/// A client connects with TLS, upgrades HTTP/1.1 to `peat-relay/1` (so the relay passes proxies and
/// firewalls that allow only HTTPS), and proves that it holds the formation's relay access key and
/// its device key (`RelayServerHandshake`); the relay proves the access key too. A member keeps one
/// `listen` connection; to reach a device, a member opens a `connect` connection naming it, the
/// relay announces it on the target's listen connection, the target opens an `accept` connection,
/// and from then on the relay copies bytes between the two. The members run their own TLS 1.3 and
/// formation handshake inside that stream: the relay forwards ciphertext it cannot read or alter.
///
/// Limits: `HandshakeLimits` before admission, admitted connections in total and per device,
/// byte rates per device and in total (reading pauses when over), bounded per-session buffering (a
/// receiver that stays unwritable for `slowReceiverTimeout` is dropped), timeouts for admission,
/// pairing and idle listeners. All connections run on one event loop, so forwarding is a plain
/// handler-to-handler write with NIO's backpressure.
public final class RelayServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// The access key members prove (`PEAT_RELAY_ACCESS_KEY`).
        public var accessKey: RelayAccessKey
        /// A certificate chain and key (for example CA-signed); nil: a self-signed one made at start.
        public var certificate: RelayCertificate?
        /// Connections still in TLS, the upgrade or admission: in total, per address, idle time.
        public var handshakeLimits = HandshakeLimits()
        /// How long TLS, the upgrade and admission may take together.
        public var handshakeTimeout: Duration = .seconds(10)
        /// Admitted connections (listeners and sessions, each side counted) in total.
        public var maximumConnections = 4096
        /// Admitted connections of one device.
        public var maximumConnectionsPerClient = 32
        /// Bytes per second one device may send through the relay (all its sessions together).
        public var clientBytesPerSecond = 8 * 1024 * 1024
        /// Bytes per second the relay forwards in total.
        public var totalBytesPerSecond = 128 * 1024 * 1024
        /// Bytes buffered towards one receiver before its sender is paused.
        public var sessionBufferBytes = 256 * 1024
        /// A receiver that cannot take data for this long is dropped with its session.
        public var slowReceiverTimeout: Duration = .seconds(15)
        /// How long a `connect` waits for the target's `accept`.
        public var pairingTimeout: Duration = .seconds(10)
        /// A listen connection with no traffic (clients ping every 20 s) for this long is closed.
        public var idleTimeout: Duration = .seconds(75)

        public init(host: String = "0.0.0.0", port: Int = 3340, accessKey: RelayAccessKey, certificate: RelayCertificate? = nil) {
            self.host = host
            self.port = port
            self.accessKey = accessKey
            self.certificate = certificate
        }
    }

    let configuration: Configuration
    let hub: RelayHub
    private let loop: any EventLoop
    private let logger: Logger
    private let context: NIOSSLContext
    private let certificateHash: [UInt8]
    private let bound: EventLoopPromise<SocketAddress>
    private let channels: NIOLockedValueBox<(listening: Bool, closed: Bool, open: [ObjectIdentifier: any Channel], admission: HandshakeAdmission)>

    /// - Parameters:
    ///   - configuration: Address, access key, certificate, limits.
    ///   - group: Where the relay's one event loop comes from.
    ///   - logger: Registrations, refusals (once per address and reason), dropped receivers.
    ///   - metricsFactory: `peat_relay_*` metrics.
    public init(
        configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "peat.relay", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws {
        self.configuration = configuration
        self.logger = logger
        loop = group.next()
        let certificate = try configuration.certificate ?? RelayCertificate.selfSigned()
        context = try certificate.serverContext()
        certificateHash = try certificate.leafHash()
        hub = RelayHub(configuration: configuration, loop: loop, logger: logger, metrics: RelayMetrics(factory: metricsFactory))
        bound = loop.makePromise(of: SocketAddress.self)
        channels = NIOLockedValueBox((false, false, [:], HandshakeAdmission(limits: configuration.handshakeLimits)))
    }

    deinit {
        bound.fail(TransportError(code: .transportClosed, message: "the relay was released without listening"))
    }

    /// Waits until the listener is bound and returns its address.
    public func listeningAddress() async throws -> PeerAddress {
        let address = try await bound.futureResult.get()
        return PeerAddress(host: address.ipAddress ?? configuration.host, port: address.port ?? configuration.port)
    }

    /// Whether the relay is listening (for `/api/v1/ready`).
    public var isListening: Bool { channels.withLockedValue { $0.listening && !$0.closed } }

    /// Devices with a listen connection, and sessions being forwarded.
    public func counts() async -> (clients: Int, sessions: Int) {
        let hub = hub
        return (try? await loop.submit { (hub.listenerCount, hub.sessionCount) }.get()) ?? (0, 0)
    }

    public func run() async throws {
        let server: NIOAsyncChannel<Void, Never>
        do {
            server = try await ServerBootstrap(group: loop, childGroup: loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(
                    .writeBufferWaterMark,
                    value: .init(low: configuration.sessionBufferBytes / 2, high: configuration.sessionBufferBytes)
                )
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HandshakeAdmissionHandler { [weak self] in self?.admit($0) ?? false })
                    }
                }
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture { try self.configure(channel) }
                }
        } catch {
            let failure = TransportError(
                code: .listenFailed, message: "cannot listen on \(PeerAddress(host: configuration.host, port: configuration.port))", cause: error)
            bound.fail(failure)
            throw failure
        }
        if let address = server.channel.localAddress {
            channels.withLockedValue { $0.listening = true }
            bound.succeed(address)
            let shown = PeerAddress(host: address.ipAddress ?? configuration.host, port: address.port ?? configuration.port)
            logger.info("Relay listening", metadata: ["address": "\(shown)", "protocol": "\(RelayProtocol.upgradeToken)"])
        }
        defer { closeAll() }
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await server.executeThenClose { inbound in
                for try await _ in inbound {}
            }
        } onCancelOrGracefulShutdown: {
            server.channel.close(promise: nil)
            self.closeAll()
        }
    }

    private func closeAll() {
        let open = channels.withLockedValue { state in
            state.closed = true
            return Array(state.open.values)
        }
        for channel in open { channel.close(promise: nil) }
    }

    private func admit(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        enum Outcome {
            case admitted, refused(HandshakeAdmission.Refusal), shutDown
        }
        let outcome = channels.withLockedValue { state -> Outcome in
            guard !state.closed else { return .shutDown }
            return state.admission.admit(key, from: address).map(Outcome.refused) ?? .admitted
        }
        switch outcome {
        case .shutDown:
            return false
        case .refused(let refusal):
            hub.metrics.refused("tooManyHandshakes")
            hub.logRefusal(address: address, reason: "tooManyHandshakes", detail: "\(refusal)")
            return false
        case .admitted:
            channel.closeFuture.whenComplete { [weak self] _ in self?.release(key) }
            return true
        }
    }

    private func release(_ key: ObjectIdentifier) {
        channels.withLockedValue { state in
            state.admission.release(key)
            state.open[key] = nil
        }
    }

    private func configure(_ channel: any Channel) throws {
        let key = ObjectIdentifier(channel)
        let open = channels.withLockedValue { state in
            guard !state.closed else { return false }
            state.open[key] = channel
            return true
        }
        guard open else {
            channel.close(promise: nil)
            return
        }
        let operations = channel.pipeline.syncOperations
        let gate = AuthenticationGate()
        try operations.addHandler(HandshakeIdleHandler(timeout: .nanoseconds(configuration.handshakeLimits.idleTimeout.nanoseconds), gate: gate))
        try operations.addHandler(NIOSSLServerHandler(context: context))
        let relay = RelayServerHandler(
            hub: hub, certificateHash: certificateHash, gate: gate,
            admitted: { [weak self] in self?.channels.withLockedValue { $0.admission.release(key) } })
        let fallback = RelayHTTPFallbackHandler()
        try operations.configureHTTPServerPipeline(
            withServerUpgrade: (
                upgraders: [RelayUpgrader(handler: relay, fallback: fallback)],
                completionHandler: { _ in }
            ),
            withErrorHandling: true)
        try operations.addHandler(fallback)
    }
}

/// A relay's TLS certificate chain and private key.
public struct RelayCertificate: Sendable {
    let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey

    /// Loads PEM files (`PEAT_RELAY_TLS_CERT`: the leaf first, then intermediates; `PEAT_RELAY_TLS_KEY`).
    /// - Throws: `TransportError` naming the file (never its contents).
    public init(certificatePath: String, keyPath: String) throws {
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw TransportError(code: .listenFailed, message: "cannot read a PEM certificate chain from \(certificatePath)", cause: error)
        }
        guard !chain.isEmpty else { throw TransportError(code: .listenFailed, message: "\(certificatePath) holds no certificate") }
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw TransportError(code: .listenFailed, message: "cannot read a PEM private key from \(keyPath)", cause: error)
        }
    }

    /// A self-signed Ed25519 certificate: TLS must be told it may sign with Ed25519.
    var signsWithEd25519 = false

    init(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, signsWithEd25519: Bool) {
        self.chain = chain
        self.key = key
        self.signsWithEd25519 = signsWithEd25519
    }

    /// A self-signed Ed25519 certificate for a key made now: the access-key proofs, not a CA, tell a
    /// member that it reached a relay of its formation.
    static func selfSigned() throws -> RelayCertificate {
        let (certificate, key) = try DeviceCertificate.make(for: DeviceKeypair.generate())
        return RelayCertificate(chain: [certificate], key: key, signsWithEd25519: true)
    }

    func serverContext() throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        if signsWithEd25519 { tls.signingSignatureAlgorithms = [.ed25519] }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw TransportError(code: .listenFailed, message: "cannot create the relay's TLS context", cause: error)
        }
    }

    /// SHA-256 of the leaf certificate's DER: what admission proofs are bound to.
    func leafHash() throws -> [UInt8] {
        guard let leaf = chain.first else { throw TransportError(code: .listenFailed, message: "no relay certificate") }
        return Array(SHA256.hash(data: try leaf.toDERBytes()))
    }
}

/// Upgrades `GET /peat/relay` with `Upgrade: peat-relay/1` to the relay protocol.
final class RelayUpgrader: HTTPServerProtocolUpgrader, @unchecked Sendable {
    // @unchecked Sendable: created in a channel initializer and used on that channel's loop only.
    let supportedProtocol = RelayProtocol.upgradeToken
    let requiredUpgradeHeaders: [String] = []
    private let handler: RelayServerHandler
    private let fallback: RelayHTTPFallbackHandler

    init(handler: RelayServerHandler, fallback: RelayHTTPFallbackHandler) {
        self.handler = handler
        self.fallback = fallback
    }

    func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        guard upgradeRequest.method == .GET, upgradeRequest.uri == RelayProtocol.path else {
            return channel.eventLoop.makeFailedFuture(TransportError(code: .protocolViolation, message: "relay upgrade on \(upgradeRequest.uri.prefix(64))"))
        }
        return channel.eventLoop.makeSucceededFuture(initialResponseHeaders)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        context.eventLoop.makeCompletedFuture {
            let operations = context.pipeline.syncOperations
            operations.removeHandler(fallback, promise: nil)
            try operations.addHandler(handler)
        }
    }
}

/// Answers any request that is not the relay upgrade: 426 with the protocol to upgrade to.
final class RelayHTTPFallbackHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let body = "this is a peat-mesh relay: upgrade to \(RelayProtocol.upgradeToken) at \(RelayProtocol.path)\n"
        var headers = HTTPHeaders()
        headers.add(name: "Upgrade", value: RelayProtocol.upgradeToken)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .upgradeRequired, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// The relay's swift-metrics instruments; labels are bounded (a refusal's reason).
struct RelayMetrics: Sendable {
    let clients: Gauge
    let sessions: Gauge
    let forwardedBytes: Counter
    let droppedReceivers: Counter
    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        clients = Gauge(label: "peat_relay_clients", factory: factory)
        sessions = Gauge(label: "peat_relay_sessions", factory: factory)
        forwardedBytes = Counter(label: "peat_relay_forwarded_bytes_total", factory: factory)
        droppedReceivers = Counter(label: "peat_relay_slow_receivers_dropped_total", factory: factory)
    }

    func refused(_ reason: String) {
        Counter(label: "peat_relay_refusals_total", dimensions: [("reason", reason)], factory: factory).increment()
    }
}
