import NIOCore
import NIOHTTP1

/// Lets a WebSocket upgrade through only with the broker's token.
///
/// NIO's upgrade handler sits before Hummingbird's router, and a refused upgrade is answered with
/// 400 whatever the router said. So a first request that asks to upgrade without a valid bearer
/// token loses its `Upgrade` header here, goes through the router as a plain request, and meets
/// `BearerAuthentication`'s 401 like any other. Between the HTTP decoder and the upgrade handler;
/// it leaves the pipeline after the first request head (only the first request can upgrade).
final class UpgradeAuthentication: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let token: BrokerToken

    init(token: BrokerToken) {
        self.token = token
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        if head.headers.contains(name: "upgrade"), !authorized(head.headers) {
            head.headers.remove(name: "upgrade")
            head.headers.remove(name: "connection")
            context.fireChannelRead(wrapInboundOut(.head(head)))
        } else {
            context.fireChannelRead(data)
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func authorized(_ headers: HTTPHeaders) -> Bool {
        guard let presented = BrokerToken.bearerCredentials(in: headers["authorization"]) else { return false }
        return token.accepts(presented)
    }
}
