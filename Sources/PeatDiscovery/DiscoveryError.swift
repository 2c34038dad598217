/// The one error type of PeatDiscovery.
public struct DiscoveryError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable { case invalidConfiguration, malformedResponse, apiFailure }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A peer list or setting that cannot be used.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A source answered with something that is not what its protocol defines.
        public static let malformedResponse = Code(.malformedResponse)
        /// A discovery API (Kubernetes) failed.
        public static let apiFailure = Code(.apiFailure)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "DiscoveryError(\(code)): \(message) (cause: \(cause))" }
        return "DiscoveryError(\(code)): \(message)"
    }
}
