import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PeatIdentity

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
