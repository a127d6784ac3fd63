import HTTP1

/// Least privilege: the calls a deployment may make (`--allow 'GET /payments/*'`).
///
/// A rule is a method (or `*`) and a path pattern whose segments are literal,
/// `*` (exactly one segment) or a final `**` (one or more segments). Paths
/// are matched after percent-decoding and ignoring ASCII case, and only paths
/// that `RequestPath` accepted (no dot or empty segments, no encoded
/// separators) reach the match, so no spelling of a path can match a rule
/// that the upstream would read as another path.
public struct AllowList: Sendable {
    public struct Rule: Sendable, CustomStringConvertible {
        let method: [UInt8]?  // nil: any
        let segments: [Pattern]
        public let description: String
    }

    enum Pattern: Sendable, Equatable {
        case literal([UInt8])
        case one
        case rest
    }

    public let rules: [Rule]

    public var isEmpty: Bool { rules.isEmpty }

    public struct InvalidRule: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ specs: [String]) throws {
        rules = try specs.map(Self.parse)
    }

    static func parse(_ spec: String) throws -> Rule {
        let parts = spec.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else {
            throw InvalidRule(description: "allow rule '\(spec)' must be 'METHOD /path/pattern'")
        }
        let methodText = String(parts[0]).uppercased()
        guard methodText == "*" || methodText.utf8.allSatisfy({ ASCII.isTokenChar[Int($0)] }) else {
            throw InvalidRule(description: "allow rule '\(spec)': invalid method")
        }
        let pathText = String(parts[1])
        guard pathText.hasPrefix("/") else {
            throw InvalidRule(description: "allow rule '\(spec)': the path must start with /")
        }
        let pieces = pathText.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var segments: [Pattern] = []
        for (n, piece) in pieces.enumerated() {
            switch piece {
            case "*": segments.append(.one)
            case "**":
                guard n == pieces.count - 1 else {
                    throw InvalidRule(description: "allow rule '\(spec)': ** may only end a pattern")
                }
                segments.append(.rest)
            default:
                if piece.isEmpty && n != pieces.count - 1 {
                    throw InvalidRule(description: "allow rule '\(spec)': empty path segment")
                }
                if piece.contains("*") || piece == "." || piece == ".." {
                    throw InvalidRule(description: "allow rule '\(spec)': '\(piece)' is not a valid segment")
                }
                segments.append(.literal(Array(piece.lowercased().utf8)))
            }
        }
        return Rule(
            method: methodText == "*" ? nil : Array(methodText.utf8), segments: segments,
            description: "\(methodText) \(pathText)")
    }

    func allows(method: ArraySlice<UInt8>, path: RequestPath) -> Bool {
        if rules.isEmpty { return true }  // before decoding the segments: no work without rules
        let segments = path.segments
        return rules.contains { rule in
            if let m = rule.method, !method.equalsIgnoringCase(m) { return false }
            return Self.match(rule.segments[...], segments[...])
        }
    }

    private static func match(_ pattern: ArraySlice<Pattern>, _ path: ArraySlice<[UInt8]>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        switch first {
        case .rest:
            return !path.isEmpty && path.allSatisfy { !$0.isEmpty }
        case .one:
            guard let segment = path.first, !segment.isEmpty else { return false }
            return match(pattern.dropFirst(), path.dropFirst())
        case .literal(let literal):
            guard let segment = path.first, segment.equalsIgnoringCase(literal) else { return false }
            return match(pattern.dropFirst(), path.dropFirst())
        }
    }
}
