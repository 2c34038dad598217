import NIOCore

/// Sits on the listening channel and keeps one connection's failure from ending the listener.
///
/// NIO reports a failure to set up an accepted connection (a socket option refused, the peer gone
/// before its pipeline was built) as an error on the listening channel, and the async listener ends
/// its accept loop on any error. Here that error is reported and goes no further: only closing the
/// listener stops it (as Hummingbird's server does for the same reason).
final class AcceptFailureHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private let report: @Sendable (any Error) -> Void

    init(report: @escaping @Sendable (any Error) -> Void) {
        self.report = report
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        report(error)
    }
}
