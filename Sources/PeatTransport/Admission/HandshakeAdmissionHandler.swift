import NIOCore

/// Sits on the listening channel, before NIO's accept handler: each accepted connection is
/// offered to `admit` first, and one it refuses is closed there — it never gets a pipeline, a TLS
/// handler or a handshake timer.
final class HandshakeAdmissionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let admit: @Sendable (any Channel) -> Bool

    init(admit: @escaping @Sendable (any Channel) -> Bool) {
        self.admit = admit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = unwrapInboundIn(data)
        guard admit(accepted) else {
            accepted.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

/// Closes a connection on which nothing arrived for `timeout` while its handshake is still running
/// (checked through the gate the formation handshake opens). First in the pipeline, so TLS
/// handshake bytes count as traffic; after authentication it only passes reads on.
final class HandshakeIdleHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private let timeout: TimeAmount
    private let gate: AuthenticationGate
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount, gate: AuthenticationGate) {
        self.timeout = timeout
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        schedule(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !gate.isOpen { schedule(context) }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    private func schedule(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let seconds = Double(timeout.nanoseconds) / 1e9
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            guard !handler.gate.isOpen else { return }
            context.fireErrorCaught(
                TransportError(code: .handshakeTimeout, message: "nothing arrived for \(seconds) s during the handshake"))
        }
    }
}
