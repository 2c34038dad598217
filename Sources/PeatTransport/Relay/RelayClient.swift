import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PeatIdentity
import X509

/// Opens connections to a relay: TCP, TLS, the HTTP/1.1 Upgrade to `peat-relay/1`, admission.
///
/// A `listen` connection is returned once admitted and then carries `incoming` announcements and
/// keepalives; a `connect` or `accept` connection once the relay paired it, at which point
/// `sessionStarted` ran on the event loop and installed the caller's own handlers (the peers' TLS
/// and formation handshake) after the relay handler, which from then on passes bytes through.
struct RelayClient: Sendable {
    let keypair: DeviceKeypair
    let accessKey: RelayAccessKey
    let group: any EventLoopGroup
    let connectTimeout: Duration
    let handshakeTimeout: Duration

    /// Opens a connection with `intent`.
    /// - Parameters:
    ///   - sessionStarted: Called on the channel's loop when the relay paired a session (not for `listen`).
    ///   - incoming: Called on a listen connection for each announced session (`device`, token).
    /// - Throws: `TransportError` (`.connectFailed`, `.relayRefused`, `.handshakeTimeout`, ...).
    func open(
        _ url: RelayURL, intent: RelayIntent,
        sessionStarted: @escaping @Sendable (any Channel) throws -> Void = { _ in },
        incoming: @escaping @Sendable (DeviceID, [UInt8]) -> Void = { _, _ in },
        onChannel: @escaping @Sendable (any Channel) -> Void = { _ in }
    ) async throws -> any Channel {
        let trust = RelayTrust(host: url.host)
        let ready: EventLoopFuture<Void>
        let channel: any Channel
        do {
            let connected = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(connectTimeout.nanoseconds))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: url.host, port: url.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        onChannel(channel)
                        let ready = channel.eventLoop.makePromise(of: Void.self)
                        let operations = channel.pipeline.syncOperations
                        var tls = TLSConfiguration.makeClientConfiguration()
                        tls.minimumTLSVersion = .tlsv12
                        tls.applicationProtocols = ["http/1.1"]
                        tls.certificateVerification = .noHostnameVerification
                        tls.trustRoots = .certificates([])
                        // A self-signed relay signs with Ed25519, which is not among BoringSSL's defaults.
                        tls.verifySignatureAlgorithms = Self.signatureAlgorithms
                        let context = try NIOSSLContext(configuration: tls)
                        let sni = url.host.isIPAddress ? nil : url.host
                        try operations.addHandler(
                            try NIOSSLClientHandler(context: context, serverHostname: sni) { chain, promise in
                                trust.verify(chain, promise: promise)
                            })
                        let handler = RelayClientHandler(
                            keypair: keypair, accessKey: accessKey, intent: intent, trust: trust, ready: ready,
                            timeout: .nanoseconds(handshakeTimeout.nanoseconds), sessionStarted: sessionStarted, incoming: incoming)
                        let upgrader = RelayClientUpgrader(handler: handler, host: url.host)
                        try operations.addHTTPClientHandlers(
                            leftOverBytesStrategy: .forwardBytes,
                            withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                        try operations.addHandler(RelayUpgradeRequester(host: url.host, port: url.port))
                        // TLS, the upgrade, admission and pairing together are bounded.
                        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(handshakeTimeout.nanoseconds)) {
                            ready.fail(TransportError(code: .handshakeTimeout, message: "relay \(url) did not admit this node in time"))
                            channel.close(promise: nil)
                        }
                        ready.futureResult.whenComplete { _ in deadline.cancel() }
                        // A TLS or HTTP failure closes the channel before the relay handler exists.
                        channel.closeFuture.whenComplete { _ in
                            ready.fail(TransportError(code: .connectFailed, message: "relay \(url) closed the connection during TLS or the upgrade"))
                        }
                        return (channel, ready.futureResult)
                    }
                }
            (channel, ready) = connected
        } catch {
            throw TransportError(code: .connectFailed, message: "cannot connect to relay \(url)", cause: error)
        }
        do {
            try await ready.get()
        } catch {
            channel.close(promise: nil)
            if let error = error as? TransportError { throw error }
            throw TransportError(code: .connectFailed, message: "cannot reach relay \(url) through TLS and the upgrade", cause: error)
        }
        return channel
    }
}

extension RelayClient {
    static let signatureAlgorithms: [SignatureAlgorithm] = [
        .ed25519, .ecdsaSecp256R1Sha256, .ecdsaSecp384R1Sha384, .ecdsaSecp521R1Sha512,
        .rsaPssRsaeSha256, .rsaPssRsaeSha384, .rsaPssRsaeSha512, .rsaPkcs1Sha256, .rsaPkcs1Sha384, .rsaPkcs1Sha512,
    ]
}

/// Writes the upgrade request once the channel is active, then leaves the pipeline.
private final class RelayUpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let host: String
    private let port: Int

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { send(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context)
        context.fireChannelActive()
    }

    private var sent = false

    private func send(_ context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: RelayProtocol.path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Only a refused upgrade reaches here (an accepted one removes the HTTP handlers first).
        if case .head(let head) = unwrapInboundIn(data) {
            context.fireErrorCaught(
                TransportError(code: .relayRefused, message: "the server answered \(head.status.code) instead of upgrading to \(RelayProtocol.upgradeToken)"))
        }
    }
}

/// Accepts the relay's 101 and installs the relay handler in place of HTTP.
private final class RelayClientUpgrader: NIOHTTPClientProtocolUpgrader, @unchecked Sendable {
    // @unchecked Sendable: created in a channel initializer and used on that channel's loop only.
    let supportedProtocol = RelayProtocol.upgradeToken
    let requiredUpgradeHeaders: [String] = []
    private let handler: RelayClientHandler
    private let host: String

    init(handler: RelayClientHandler, host: String) {
        self.handler = handler
        self.host = host
    }

    func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {}

    func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool { true }

    func upgrade(context: ChannelHandlerContext, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<Void> {
        context.eventLoop.makeCompletedFuture {
            let operations = context.pipeline.syncOperations
            if let requester = try? operations.handler(type: RelayUpgradeRequester.self) {
                operations.removeHandler(requester, promise: nil)
            }
            try operations.addHandler(handler)
        }
    }
}

/// How a node trusts a relay's TLS certificate. A self-signed certificate (what a relay makes when
/// it has none configured) is accepted: the relay's access-key proof, bound to this certificate,
/// is what says it belongs to the formation. A certificate issued by someone else (a CA-signed one,
/// `PEAT_RELAY_TLS_CERT`) must also verify against the system's roots for the URL's host when this
/// node has roots (a slim image without a CA bundle relies on the proof alone).
final class RelayTrust: Sendable {
    let host: String
    private let leaf = NIOLockedValueBox<[UInt8]?>(nil)

    init(host: String) {
        self.host = host
    }

    /// SHA-256 of the verified leaf certificate's DER.
    var certificateHash: [UInt8]? { leaf.withLockedValue { $0 } }

    func verify(_ chain: [NIOSSLCertificate], promise: EventLoopPromise<NIOSSLVerificationResult>) {
        guard let first = chain.first, let der = try? first.toDERBytes(), let certificate = try? Certificate(derEncoded: der) else {
            promise.succeed(.failed)
            return
        }
        leaf.withLockedValue { $0 = Array(SHA256.hash(data: der)) }
        guard certificate.issuer != certificate.subject, let roots = Self.systemRoots else {
            promise.succeed(.certificateVerified)
            return
        }
        let intermediates = CertificateStore(chain.dropFirst().compactMap { try? Certificate(derEncoded: $0.toDERBytes()) })
        let host = host
        promise.completeWithTask {
            var verifier = Verifier(rootCertificates: roots) {
                RFC5280Policy()
                ServerIdentityPolicy(serverHostname: host.isIPAddress ? nil : host, serverIP: host.isIPAddress ? host : nil)
            }
            switch await verifier.validate(leaf: certificate, intermediates: intermediates) {
            case .validCertificate: return .certificateVerified
            case .couldNotValidate: return .failed
            }
        }
    }

    /// The system's CA bundle, or nil when this machine has none.
    static let systemRoots: CertificateStore? = {
        let paths = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
        guard paths.contains(where: { FileManager.default.isReadableFile(atPath: $0) }) else { return nil }
        return CertificateStore.systemTrustRoots
    }()
}

extension String {
    /// Whether this is an IPv4 or IPv6 literal (no name resolution).
    var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}

/// The client end of a relay connection after the upgrade: admission, then keepalives and
/// announcements (listen) or, once paired, a pass-through for the session's bytes.
final class RelayClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Mode {
        case admission(RelayClientHandshake)
        case listening
        case session
        case closed
    }

    private let keypair: DeviceKeypair
    private let accessKey: RelayAccessKey
    private let intent: RelayIntent
    private let trust: RelayTrust
    private let ready: EventLoopPromise<Void>
    private let timeout: TimeAmount
    private let sessionStarted: @Sendable (any Channel) throws -> Void
    private let incoming: @Sendable (DeviceID, [UInt8]) -> Void
    private var mode: Mode = .closed
    private var buffer = ByteBuffer()
    private var timer: Scheduled<Void>?
    private var lastHeard = NIODeadline.now()
    /// Pings on a listen connection; one unanswered for `3 * pingInterval` closes it.
    static let pingInterval: TimeAmount = .seconds(20)

    init(
        keypair: DeviceKeypair, accessKey: RelayAccessKey, intent: RelayIntent, trust: RelayTrust, ready: EventLoopPromise<Void>,
        timeout: TimeAmount, sessionStarted: @escaping @Sendable (any Channel) throws -> Void,
        incoming: @escaping @Sendable (DeviceID, [UInt8]) -> Void
    ) {
        self.keypair = keypair
        self.accessKey = accessKey
        self.intent = intent
        self.trust = trust
        self.ready = ready
        self.timeout = timeout
        self.sessionStarted = sessionStarted
        self.incoming = incoming
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let hash = trust.certificateHash else {
            fail(context, TransportError(code: .handshakeFailed, message: "the relay's TLS certificate is unknown"))
            return
        }
        var handshake = RelayClientHandshake(accessKey: accessKey, keypair: keypair, intent: intent, certificateHash: hash)
        let hello = handshake.start()
        mode = .admission(handshake)
        write(hello, context)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            if case .admission = handler.mode {
                handler.fail(context, TransportError(code: .handshakeTimeout, message: "the relay did not admit this node in time"))
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        ready.fail(TransportError(code: .connectionClosed, message: "the relay connection closed"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        ready.fail(TransportError(code: .connectionClosed, message: "the relay closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .session = mode {
            context.fireErrorCaught(error)
            return
        }
        fail(context, error as? TransportError ?? TransportError(code: .connectionClosed, message: "the relay connection failed", cause: error))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .session = mode {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        lastHeard = .now()
        do {
            while !isSession, let frame = try RelayFrame.decode(from: &buffer) { handle(frame, context) }
        } catch {
            fail(context, error)
            return
        }
        if isSession, buffer.readableBytes > 0 {
            // The peer's first session bytes arrived with sessionStarted.
            let rest = buffer
            buffer = ByteBuffer()
            context.fireChannelRead(wrapInboundOut(rest))
        }
    }

    private var isSession: Bool {
        if case .session = mode { return true }
        return false
    }

    private func handle(_ frame: RelayFrame, _ context: ChannelHandlerContext) {
        switch mode {
        case .admission(var handshake):
            if !handshake.isAuthSent {
                let action = handshake.received(frame)
                mode = .admission(handshake)
                switch action {
                case .send(let reply): write(reply, context)
                case .fail(let code, let message): fail(context, TransportError(code: code, message: message))
                case .none: break
                }
                return
            }
            switch (frame.kind, intent) {
            case (.admitted, .listen):
                timer?.cancel()
                mode = .listening
                ready.succeed(())
                schedulePing(context)
            case (.sessionStarted, .connect), (.sessionStarted, .accept):
                timer?.cancel()
                mode = .session
                do {
                    try sessionStarted(context.channel)
                    ready.succeed(())
                } catch {
                    fail(context, error as? TransportError ?? TransportError(code: .handshakeFailed, message: "cannot start the session", cause: error))
                }
            case (.refused, _):
                fail(context, TransportError(code: .relayRefused, message: RelayRefusal.describe(frame)))
            default:
                fail(context, TransportError(code: .protocolViolation, message: "unexpected \(frame.kind) frame from the relay"))
            }
        case .listening:
            switch frame.kind {
            case .incoming where frame.payload.count == DeviceID.byteCount + RelayIntent.tokenByteCount:
                if let device = try? DeviceID(rawRepresentation: frame.payload.prefix(DeviceID.byteCount)) {
                    incoming(device, Array(frame.payload.suffix(RelayIntent.tokenByteCount)))
                }
            case .ping:
                write(RelayFrame(kind: .pong, payload: frame.payload), context)
            case .pong:
                break
            case .refused:
                fail(context, TransportError(code: .relayRefused, message: RelayRefusal.describe(frame)))
            default:
                fail(context, TransportError(code: .protocolViolation, message: "unexpected \(frame.kind) frame from the relay"))
            }
        case .session, .closed:
            break
        }
    }

    private func schedulePing(_ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: Self.pingInterval) {
            let (handler, context) = bound.value
            guard case .listening = handler.mode else { return }
            if NIODeadline.now() - handler.lastHeard > Self.pingInterval * 3 {
                handler.fail(context, TransportError(code: .idleTimeout, message: "the relay stopped answering"))
                return
            }
            handler.write(RelayFrame(kind: .ping, payload: Array(repeating: 0, count: 8)), context)
            handler.schedulePing(context)
        }
    }

    private func write(_ frame: RelayFrame, _ context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: RelayFrame.headerSize + frame.payload.count)
        frame.encode(into: &out)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: TransportError) {
        timer?.cancel()
        mode = .closed
        ready.fail(error)
        context.close(promise: nil)
    }
}
