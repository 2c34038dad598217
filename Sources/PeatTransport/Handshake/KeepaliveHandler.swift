import NIOConcurrencyHelpers
import NIOCore
import PeatIdentity

/// Keeps an authenticated connection alive and honest: answers pings, sends a ping when nothing
/// was written for a while (and once right after authentication), measures round-trip time from
/// pongs, and closes the connection when nothing arrives within the idle timeout.
///
/// Works with an `IdleStateHandler` before it; inactive until the formation handshake succeeded
/// (pings before that would be protocol violations). Only data frames travel further inbound.
/// It also records the first error the pipeline reports, so the connection can say why it closed.
final class KeepaliveHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    /// Where the latest round-trip time is published for the connection object.
    let roundTripTime: NIOLockedValueBox<Duration?>
    /// The first error of this connection (idle timeout, malformed frame, TLS failure, ...).
    let closeReason: NIOLockedValueBox<TransportError?>
    private let onRoundTripTime: @Sendable (PeerIdentity, Duration) -> Void
    /// The authenticated peer; nil (and the handler inactive) until the handshake succeeded.
    private var peer: PeerIdentity?

    init(
        roundTripTime: NIOLockedValueBox<Duration?>, closeReason: NIOLockedValueBox<TransportError?>,
        onRoundTripTime: @escaping @Sendable (PeerIdentity, Duration) -> Void
    ) {
        self.roundTripTime = roundTripTime
        self.closeReason = closeReason
        self.onRoundTripTime = onRoundTripTime
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let authenticated as FormationHandshakeHandler.Authenticated:
            peer = authenticated.peer
            sendPing(context: context)
        case IdleStateHandler.IdleStateEvent.write where peer != nil:
            sendPing(context: context)
        case IdleStateHandler.IdleStateEvent.read where peer != nil:
            fail(context: context, TransportError(code: .idleTimeout, message: "nothing arrived from the peer within the idle timeout"))
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .ping:
            guard frame.payload.count <= 64 else { return protocolViolation(context: context, "oversized ping") }
            context.writeAndFlush(wrapOutboundOut(Frame(kind: .pong, payload: frame.payload)), promise: nil)
        case .pong:
            guard frame.payload.count == 8 else { return protocolViolation(context: context, "malformed pong") }
            let sent = frame.payload.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let now = NIODeadline.now().uptimeNanoseconds
            guard now >= sent else { return }
            let rtt = Duration.nanoseconds(Int64(now - sent))
            roundTripTime.withLockedValue { $0 = rtt }
            if let peer { onRoundTripTime(peer, rtt) }
        case .data:
            context.fireChannelRead(data)
        default:
            protocolViolation(context: context, "unexpected \(frame.kind) frame after the handshake")
        }
    }

    private func sendPing(context: ChannelHandlerContext) {
        let now = NIODeadline.now().uptimeNanoseconds
        let payload = (0..<8).map { UInt8(truncatingIfNeeded: now >> UInt64(56 - 8 * $0)) }
        context.writeAndFlush(wrapOutboundOut(Frame(kind: .ping, payload: payload)), promise: nil)
    }

    private func protocolViolation(context: ChannelHandlerContext, _ message: String) {
        fail(context: context, TransportError(code: .protocolViolation, message: message))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let transportError =
            (error as? TransportError)
            ?? TransportError(code: .connectionClosed, message: "the connection failed", cause: error)
        fail(context: context, transportError)
    }

    /// Records the first reason, tells the application (its inbound sequence ends with it) and closes.
    private func fail(context: ChannelHandlerContext, _ error: TransportError) {
        closeReason.withLockedValue { if $0 == nil { $0 = error } }
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
