import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route but the probes and the metrics.
///
/// Runs before routing, so an unknown path or a wrong method answers 401 too: without the token a
/// client learns nothing about the API. A missing or wrong token is answered with
/// `401 {"error","status":401}` and `WWW-Authenticate: Bearer`.
struct BearerAuthentication<Context: RequestContext>: RouterMiddleware {
    let token: BrokerToken

    /// `GET` on these paths needs no token (kubelet probes and Prometheus scrapes carry none).
    static var openPaths: Set<String> { ["/api/v1/health", "/api/v1/ready", "/metrics"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .get, Self.openPaths.contains(request.uri.path) {
            return try await next(request, context)
        }
        let values = request.headers[values: .authorization]
        guard values.count == 1, let presented = BrokerToken.bearerCredentials(values[0]) else {
            throw BrokerError(code: .unauthorized, message: "this route needs Authorization: Bearer <token>")
        }
        guard token.accepts(presented) else {
            throw BrokerError(code: .unauthorized, message: "the bearer token is not valid")
        }
        return try await next(request, context)
    }
}
