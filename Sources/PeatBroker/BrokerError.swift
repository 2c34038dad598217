/// The one error type of PeatBroker; each code maps to an HTTP status.
public struct BrokerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case badRequest, unauthorized, notFound, methodNotAllowed, preconditionFailed, payloadTooLarge, unavailable, timeout, internalError
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let badRequest = Code(.badRequest)
        /// A protected route without the broker's bearer token (or with another one).
        public static let unauthorized = Code(.unauthorized)
        public static let notFound = Code(.notFound)
        public static let methodNotAllowed = Code(.methodNotAllowed)
        /// A conditional write (`If-Match`) found another version.
        public static let preconditionFailed = Code(.preconditionFailed)
        public static let payloadTooLarge = Code(.payloadTooLarge)
        /// The node cannot serve this now (for example the store is closing).
        public static let unavailable = Code(.unavailable)
        public static let timeout = Code(.timeout)
        public static let internalError = Code(.internalError)

        /// The HTTP status this code is answered with.
        public var status: Int {
            switch value {
            case .badRequest: 400
            case .unauthorized: 401
            case .notFound: 404
            case .methodNotAllowed: 405
            case .preconditionFailed: 412
            case .payloadTooLarge: 413
            case .unavailable: 503
            case .timeout: 504
            case .internalError: 500
            }
        }

        public var description: String { value.rawValue }
    }

    public var code: Code
    /// A message for the API client; never contains secrets.
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "BrokerError(\(code)): \(message) (cause: \(cause))" }
        return "BrokerError(\(code)): \(message)"
    }
}
