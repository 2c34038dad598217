import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The broker's per-connection limits around Hummingbird's HTTP/WebSocket channel: at most
/// `perAddress` connections from one IP address (more are closed at once), and a deadline for the
/// first request head (a connection that sends nothing, or trickles its headers, is closed).
/// The total is Hummingbird's own limit (`MaximumAvailableConnections`: past it the broker stops
/// accepting until a connection closes); the idle time between requests is Hummingbird's
/// `idleTimeout`.
struct LimitedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let connections: ConnectionsByAddress
    let firstRequestTimeout: TimeAmount
    /// When set, a WebSocket upgrade needs it (`UpgradeAuthentication`).
    let token: BrokerToken?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let admitted = connections.open(address)
        channel.closeFuture.whenComplete { _ in connections.close(address) }
        do {
            try channel.pipeline.syncOperations.addHandler(FirstRequestDeadline(timeout: firstRequestTimeout))
        } catch {
            channel.close(promise: nil)
        }
        // Set up either way: a failed setup would reach the listening channel, and on Linux
        // Hummingbird's accept loop ends on any error there. A refused connection is closed right
        // after, before it is read from.
        let value = base.setup(channel: channel, logger: logger)
        if let token {
            // The base configured its HTTP pipeline synchronously (we are on the channel's loop).
            do {
                let operations = channel.pipeline.syncOperations
                let decoder = try operations.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
                try operations.addHandler(UpgradeAuthentication(token: token), position: .after(decoder.handler))
            } catch {
                logger.warning("Broker connection closed: cannot install the upgrade check", metadata: ["reason": "\(error)"])
                channel.close(promise: nil)
            }
        }
        return value.map { value in
            if !admitted {
                logger.debug("Broker connection refused: too many from one address", metadata: ["address": "\(address)"])
                channel.close(promise: nil)
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Open connections per IP address, with a cap.
final class ConnectionsByAddress: Sendable {
    let limit: Int
    private let counts = Mutex<[String: Int]>([:])

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts a new connection from `address`; false when that goes past the limit (it is counted
    /// anyway, and `close` uncounts it like any other).
    func open(_ address: String) -> Bool {
        counts.withLock { counts in
            let count = counts[address, default: 0] + 1
            counts[address] = count
            return count <= limit
        }
    }

    func close(_ address: String) {
        counts.withLock { counts in
            let left = counts[address, default: 1] - 1
            counts[address] = left > 0 ? left : nil
        }
    }

    func count(from address: String) -> Int { counts.withLock { $0[address, default: 0] } }
}

/// Closes the connection unless the end of the first request head (`CRLF CRLF`) arrives within
/// `timeout` of the connection opening; then it leaves the pipeline (later requests are bounded by
/// Hummingbird's idle timeout, an upgraded WebSocket by its pings).
final class FirstRequestDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// How many bytes of `\r\n\r\n` the stream has matched so far.
    private var matched = 0

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        var complete = false
        for byte in buffer.readableBytesView {
            let expected: UInt8 = matched % 2 == 0 ? 0x0d : 0x0a
            if byte == expected {
                matched += 1
            } else {
                matched = byte == 0x0d ? 1 : 0
            }
            if matched == 4 {
                complete = true
                break
            }
        }
        context.fireChannelRead(data)
        if complete {
            deadline?.cancel()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
