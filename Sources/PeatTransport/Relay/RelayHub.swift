import Logging
import NIOCore
import PeatIdentity

/// The relay's registry: listening devices, sessions waiting for their target, connection counts
/// and rate buckets. Lives on the relay's one event loop; every method is called there.
final class RelayHub: @unchecked Sendable {
    // @unchecked Sendable: all state is touched only on `loop` (asserted), like a channel handler's.
    let configuration: RelayServer.Configuration
    let loop: any EventLoop
    let logger: Logger
    let metrics: RelayMetrics

    private var listeners: [DeviceID: RelayServerHandler] = [:]
    private var waiting: [[UInt8]: (dialer: RelayServerHandler, target: DeviceID, timeout: Scheduled<Void>)] = [:]
    private var connectionsPerClient: [DeviceID: Int] = [:]
    private var clientBuckets: [DeviceID: ByteBucket] = [:]
    private var total = 0
    private var totalBucket: ByteBucket
    private(set) var sessionCount = 0
    private var loggedRefusals: Set<String> = []

    init(configuration: RelayServer.Configuration, loop: any EventLoop, logger: Logger, metrics: RelayMetrics) {
        self.configuration = configuration
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        totalBucket = ByteBucket(rate: configuration.totalBytesPerSecond, now: .now())
    }

    var listenerCount: Int { listeners.count }

    enum Outcome {
        /// Registered as the device's listener.
        case listening
        /// Waiting for the target's accept.
        case waiting
        /// Paired with this handler.
        case paired(RelayServerHandler)
        case refused(RelayRefusal, String)
    }

    /// An admitted connection says what it wants.
    func admitted(_ handler: RelayServerHandler, peer: PeerIdentity, intent: RelayIntent) -> Outcome {
        loop.preconditionInEventLoop()
        let device = peer.deviceID
        guard total < configuration.maximumConnections else {
            return .refused(.limitReached, "the relay holds \(configuration.maximumConnections) connections")
        }
        guard connectionsPerClient[device, default: 0] < configuration.maximumConnectionsPerClient else {
            return .refused(.limitReached, "device \(device) holds \(configuration.maximumConnectionsPerClient) connections")
        }
        let outcome: Outcome
        switch intent {
        case .listen:
            let previous = listeners.updateValue(handler, forKey: device)
            if previous == nil {
                logger.info("Relay client registered", metadata: ["device_id": "\(device)"])
            }
            previous?.close(refusing: nil)
            metrics.clients.record(listeners.count)
            outcome = .listening
        case .connect(let target, let token):
            guard target != device, let listener = listeners[target] else {
                return .refused(.peerUnavailable, "device \(target) is not connected to this relay")
            }
            guard waiting[token] == nil else { return .refused(.protocolViolation, "session token in use") }
            let bound = NIOLoopBound(handler, eventLoop: loop)
            let timeout = loop.scheduleTask(in: .nanoseconds(configuration.pairingTimeout.nanoseconds)) { [weak self] in
                guard let self, self.waiting.removeValue(forKey: token) != nil else { return }
                bound.value.close(refusing: (.timedOut, "device \(target) did not accept the session"))
            }
            waiting[token] = (handler, target, timeout)
            listener.announce(from: device, token: token)
            outcome = .waiting
        case .accept(let token):
            guard let pending = waiting[token], pending.target == device else {
                return .refused(.peerUnavailable, "no session waits for this device under that token")
            }
            waiting[token] = nil
            pending.timeout.cancel()
            sessionCount += 1
            metrics.sessions.record(sessionCount)
            outcome = .paired(pending.dialer)
        }
        total += 1
        connectionsPerClient[device, default: 0] += 1
        if clientBuckets[device] == nil { clientBuckets[device] = ByteBucket(rate: configuration.clientBytesPerSecond, now: .now()) }
        return outcome
    }

    /// An admitted connection closed.
    func closed(_ handler: RelayServerHandler, peer: PeerIdentity, wasSession: Bool, token: [UInt8]?) {
        loop.preconditionInEventLoop()
        let device = peer.deviceID
        if listeners[device] === handler {
            listeners[device] = nil
            metrics.clients.record(listeners.count)
            logger.info("Relay client left", metadata: ["device_id": "\(device)"])
        }
        if let token, let pending = waiting[token], pending.dialer === handler {
            pending.timeout.cancel()
            waiting[token] = nil
        }
        if wasSession {
            sessionCount -= 1
            metrics.sessions.record(sessionCount)
        }
        total -= 1
        let left = connectionsPerClient[device, default: 1] - 1
        connectionsPerClient[device] = left > 0 ? left : nil
        if left <= 0 { clientBuckets[device] = nil }
    }

    /// Accounts `bytes` forwarded from `device`; how long its reader must pause (nil: not at all).
    func spend(_ bytes: Int, from device: DeviceID) -> TimeAmount? {
        metrics.forwardedBytes.increment(by: bytes)
        let now = NIODeadline.now()
        let client = clientBuckets[device]?.spend(bytes, now: now)
        let all = totalBucket.spend(bytes, now: now)
        return [client, all].compactMap { $0 }.max()
    }

    /// How long a paused reader of `device` must still wait.
    func pause(for device: DeviceID) -> TimeAmount? {
        let now = NIODeadline.now()
        return [clientBuckets[device]?.pause(now: now), totalBucket.pause(now: now)].compactMap { $0 }.max()
    }

    /// Logs a refusal once per address and reason (then at debug). Called on the loop: the listening
    /// channel runs on it too.
    func logRefusal(address: String, reason: String, detail: String) {
        loop.preconditionInEventLoop()
        if loggedRefusals.count > 4096 { loggedRefusals.removeAll() }
        let first = loggedRefusals.insert("\(address)|\(reason)").inserted
        logger.log(
            level: first ? .warning : .debug, "Relay refused a client",
            metadata: ["client.address": "\(address)", "reason": "\(reason)", "detail": "\(detail)"])
    }
}
