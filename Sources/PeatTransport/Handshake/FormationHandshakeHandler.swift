import NIOCore
import NIOSSL
import NIOTLS
import PeatIdentity

/// Runs `FormationHandshake` on a channel: no frame reaches the handlers after it until the peer
/// proved formation membership. Completes `authenticated` with the peer and the negotiated protocol
/// version, or fails it and closes.
final class FormationHandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    /// Fired inbound once the peer is authenticated, so later handlers (keepalive) can start.
    struct Authenticated: Sendable {
        let peer: PeerIdentity
        let version: SyncProtocolVersion
    }

    private var handshake: FormationHandshake
    private let timeout: TimeAmount
    private let authenticated: EventLoopPromise<Authenticated>
    private var deadline: Scheduled<Void>?
    private let gate: AuthenticationGate
    private let peerCertificate: () -> NIOSSLCertificate?

    /// - Parameter peerCertificate: The leaf certificate the peer presented to this connection's
    ///   TLS handler (recorded by its verification callback).
    init(
        handshake: FormationHandshake, timeout: TimeAmount, authenticated: EventLoopPromise<Authenticated>, gate: AuthenticationGate,
        peerCertificate: @escaping () -> NIOSSLCertificate?
    ) {
        self.peerCertificate = peerCertificate
        self.handshake = handshake
        self.timeout = timeout
        self.authenticated = authenticated
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.apply(handler.handshake.timedOut(), context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        // A no-op after success: the promise is already complete.
        authenticated.fail(TransportError(code: .connectionClosed, message: "the connection closed during the handshake"))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiatedProtocol) = event {
            let peerKey = peerCertificate().flatMap { DeviceCertificate.deviceKey(of: $0) }
            apply(handshake.tlsHandshakeCompleted(negotiatedProtocol: negotiatedProtocol, peerKey: peerKey), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if handshake.isAuthenticated {
            context.fireChannelRead(data)
            return
        }
        apply(handshake.received(unwrapInboundIn(data)), context: context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard handshake.isAuthenticated else {
            promise?.fail(TransportError(code: .protocolViolation, message: "no application data before the formation handshake"))
            return
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshake.isAuthenticated {
            let reason =
                (error as? TransportError)
                ?? TransportError(code: .handshakeFailed, message: "the TLS handshake failed", cause: error)
            authenticated.fail(reason)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !handshake.isAuthenticated {
            authenticated.fail(TransportError(code: .connectionClosed, message: "the peer closed the connection during the handshake"))
        }
        context.fireChannelInactive()
    }

    private func apply(_ action: FormationHandshake.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .send(let frame):
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        case .authenticated(let peer):
            deadline?.cancel()
            gate.isOpen = true
            let event = Authenticated(peer: peer, version: handshake.version ?? .v1)
            authenticated.succeed(event)
            context.fireUserInboundEventTriggered(event)
            // Its work is done: leave the hot path (later frames go straight to keepalive).
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .fail(let code, let message):
            deadline?.cancel()
            authenticated.fail(TransportError(code: code, message: message))
            context.close(promise: nil)
        }
    }
}
