/// A configuration value the node refuses to start with.
///
/// Its `description` is the single line the node prints before exiting: it names the variable
/// and what is wrong, and never contains the value of a secret.
struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The environment variable (or variables) at fault.
    let variable: String
    /// What is wrong, safe to print.
    let message: String

    var description: String { "\(variable): \(message)" }

    /// Quotes a (non-secret) configured value for an error line: truncated, control characters escaped.
    static func quote(_ value: String) -> String {
        let shown = value.prefix(64).unicodeScalars.map { scalar in
            scalar.properties.generalCategory == .control ? scalar.escaped(asASCII: true) : String(scalar)
        }.joined()
        return "\"\(shown)\(value.count > 64 ? "…" : "")\""
    }
}
