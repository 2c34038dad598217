import NIOConcurrencyHelpers
import NIOCore

/// Records the first error a connection's pipeline reports, so the connection can say why it
/// closed (idle timeout, malformed frame, ...) after the fact.
final class CloseReasonRecorder: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame

    let reason: NIOLockedValueBox<TransportError?>

    init(reason: NIOLockedValueBox<TransportError?>) {
        self.reason = reason
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let transportError = (error as? TransportError)
            ?? TransportError(code: .connectionClosed, message: "the connection failed", cause: error)
        reason.withLockedValue { if $0 == nil { $0 = transportError } }
        context.fireErrorCaught(transportError)
        context.close(promise: nil)
    }
}
