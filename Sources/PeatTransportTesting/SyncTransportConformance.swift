import PeatIdentity
public import PeatTransport
public import ServiceLifecycle

/// How the conformance checks make transports of one kind that can reach each other.
public protocol SyncTransportConformanceSubject: Sendable {
    /// A new transport for the device derived from `secret` and `name`, holding formation `secret`.
    func makeTransport(name: String, secret: [UInt8]) throws -> any SyncTransport & Service
    /// Where a running transport made by this subject can be dialled; waits until it listens.
    func address(of transport: any SyncTransport & Service) async throws -> PeerAddress
    /// The largest frame payload the transports accept (a check sends one byte more).
    var maximumPayloadSize: Int { get }
    /// An address where nothing listens.
    var unreachableAddress: PeerAddress { get }
}

/// The behaviour every `SyncTransport` must have, as checks an embedder runs against their own
/// transport (`TLSSyncTransport` and `InMemorySyncTransport` run the same ones):
///
///     @Test(arguments: SyncTransportConformance.checks)
///     func myTransportConforms(_ check: SyncTransportConformance.Check) async throws {
///         try await check.run(on: MyTransportSubject())
///     }
///
/// A check throws `SyncTransportConformance.Failure` naming what did not hold.
public enum SyncTransportConformance {
    public static let secret = Array("conformance-formation-shared-secret".utf8)

    public struct Check: Sendable, CustomStringConvertible {
        public let name: String
        private let body: @Sendable (any SyncTransportConformanceSubject) async throws -> Void

        init(_ name: String, _ body: @escaping @Sendable (any SyncTransportConformanceSubject) async throws -> Void) {
            self.name = name
            self.body = body
        }

        /// Runs the check with transports from `subject` (two at a time, run for the check's length).
        public func run(on subject: any SyncTransportConformanceSubject) async throws {
            try await body(subject)
        }

        public var description: String { name }
    }

    /// A behaviour that did not hold.
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public let line: UInt
        public var description: String { "SyncTransport conformance: \(message) (line \(line))" }
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) throws(Failure) {
        guard condition else { throw Failure(message: message(), line: line) }
    }

    /// Expects `body` to fail with a `TransportError`, of `code` when given.
    static func expectFailure(_ what: String, code: TransportError.Code? = nil, line: UInt = #line, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as TransportError {
            if let code, error.code != code { throw Failure(message: "\(what): failed with \(error.code), expected \(code)", line: line) }
            return
        } catch {
            throw Failure(message: "\(what): failed with \(error), expected a TransportError", line: line)
        }
        throw Failure(message: "\(what): succeeded, expected a failure", line: line)
    }

    static func keypair(_ name: String, _ secret: [UInt8] = secret) -> DeviceKeypair {
        DeviceKeypair.fromSeed(secret, context: name)
    }

    /// Runs a dialler and a listener (with `listenerSecret`) while `body` runs.
    static func withPair(
        _ subject: any SyncTransportConformanceSubject, listenerSecret: [UInt8] = secret,
        _ body: @Sendable (_ dialler: any SyncTransport, _ listener: any SyncTransport, _ address: PeerAddress) async throws -> Void
    ) async throws {
        let a = try subject.makeTransport(name: "peat-mesh-0", secret: secret)
        let b = try subject.makeTransport(name: "peat-mesh-1", secret: listenerSecret)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            defer { group.cancelAll() }
            let address = try await subject.address(of: b)
            try await body(a, b, address)
        }
    }

    /// What `withTimeout` throws when the time is up.
    package struct TimedOut: Error {
        package init() {}
    }

    /// `body`'s result, or `TimedOut` after `timeout` (the transport's own tests use it too).
    package static func withTimeout<R: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> R) async throws -> R {
        try await withThrowingTaskGroup(of: R.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TimedOut()
            }
            defer { group.cancelAll() }
            guard let result = try await group.next() else { throw TimedOut() }
            return result
        }
    }

    static func nextInbound(_ transport: any SyncTransport) async throws -> any SyncConnection {
        let stream = transport.inboundConnections
        return try await withTimeout(.seconds(10)) {
            var iterator = stream.makeAsyncIterator()
            guard let connection = await iterator.next() else { throw Failure(message: "inbound connections ended", line: #line) }
            return connection
        }
    }

    /// Every check, in a stable order.
    public static let checks: [Check] = [
        Check("exchanges frames in both directions", exchangesFrames),
        Check("rejects a peer with another formation secret", rejectsOtherFormation),
        Check("rejects an unexpected identity", rejectsUnexpectedIdentity),
        Check("closing ends the peer's inbound frames", closingEndsInbound),
        Check("refuses a second use and oversized frames", refusesSecondUseAndOversizedFrames),
        Check("refuses an address where nothing listens", refusesUnreachableAddress),
    ]
}
