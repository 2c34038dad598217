import NIOCore
import PeatIdentity

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
        context.writeAndFlush(wrapOutboundOut(frame.buffer(context.channel.allocator)), promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: TransportError) {
        timer?.cancel()
        mode = .closed
        ready.fail(error)
        context.close(promise: nil)
    }
}
