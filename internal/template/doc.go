// Package template evaluates Azure Resource Manager (ARM) JSON templates:
// the documents `az deployment group create --template-file` sends.
//
// Evaluate takes a template, the deployment's parameter values and the
// deployment's environment (subscription, resource group, deployment name)
// and returns the resources to create, in an order that honours dependsOn,
// with every template expression evaluated, plus the outputs.
//
// Supported: parameters (type, defaultValue, allowedValues, minValue,
// maxValue, minLength, maxLength), variables, resources as an array (with
// condition and dependsOn), outputs, and the expression language in strings
// ("[...]", with "[[" escaping a literal leading bracket): string, integer
// and boolean literals, nested function calls, property access (.x and
// ['x']) and indexing ([0]). The functions are listed in functions.go.
//
// Not implemented, each reported as an *Error with Code NotImplemented:
// copy loops, nested child resources, symbolic-name resources
// (languageVersion 2.0), cross-scope resources, user-defined functions,
// Key Vault parameter references, and the functions that need a live
// deployment engine (reference, list*, utcNow, newGuid, environment,
// pickZones, providers, tenant, managementGroup).
//
// uniqueString reproduces Azure's values (a 64-bit MurmurHash3 variant,
// base32 encoded to 13 characters) and is checked against values Azure
// produced. guid is a UUID version 5 over the arguments; it is
// deterministic but not verified against Azure's values.
package template
