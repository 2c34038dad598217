import NIOCore

/// Hands the application the data frames of one socket read together, instead of one at a time.
///
/// Many small frames arrive in one read; crossing into Swift concurrency once per read instead of
/// once per frame is what keeps small-frame throughput close to raw TLS. Batches are bounded by
/// what one read decodes, and the async channel's watermarks bound how many batches wait.
/// Pending frames are delivered before an error or the end of the connection.
final class DataFrameBatcher: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = [[UInt8]]

    private var pending: [[UInt8]] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending.append(unwrapInboundIn(data).payload)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush(context: context)
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        flush(context: context)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        flush(context: context)
        context.fireChannelInactive()
    }

    private func flush(context: ChannelHandlerContext) {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending = []
        context.fireChannelRead(wrapInboundOut(batch))
    }
}
