import NIOCore

/// Fires `IdleStateHandler.IdleStateEvent.read` (or `.write`) inbound when nothing was read (or
/// written) through this handler for `timeout`: NIO's `IdleStateHandler` on the event loop's own clock
/// (`EventLoop.now`), so an `EmbeddedEventLoop` test moves it exactly by `advanceTime`.
///
/// The sync pipeline puts a read timer below TLS (every byte off the wire counts, so a large frame
/// crossing a slow link keeps the connection alive) and a write timer above the framing (a ping goes
/// out when no frame was written for the keepalive interval).
final class IdleTimerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    enum Direction {
        case read, write
    }

    private let direction: Direction
    private let timeout: TimeAmount
    private var last: NIODeadline = .distantPast
    private var check: Scheduled<Void>?

    init(_ direction: Direction, timeout: TimeAmount) {
        self.direction = direction
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if direction == .read { last = context.eventLoop.now }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if direction == .write { last = context.eventLoop.now }
        context.write(data, promise: promise)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard check == nil else { return }
        last = context.eventLoop.now
        schedule(context, at: last + timeout)
    }

    private func stop() {
        check?.cancel()
        check = nil
    }

    private func schedule(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        guard check != nil, context.channel.isActive else { return }
        let now = context.eventLoop.now
        if now - last >= timeout {
            last = now
            context.fireUserInboundEventTriggered(direction == .read ? IdleStateHandler.IdleStateEvent.read : .write)
        }
        if check != nil { schedule(context, at: last + timeout) }
    }
}
