package model

import (
	"encoding/json"
	"slices"
	"time"
)

// SessionPoolType is the canonical ARM type of a session pool.
const SessionPoolType = "Microsoft.App/sessionPools"

// Container types.
const (
	ContainerTypeCustomContainer = "CustomContainer"
	ContainerTypePythonLTS       = "PythonLTS"
	ContainerTypeNodeLTS         = "NodeLTS"
	ContainerTypeShell           = "Shell"
	ContainerTypeGpuBase         = "GpuBase"
)

// Lifecycle types.
const (
	LifecycleTimed           = "Timed"
	LifecycleOnContainerExit = "OnContainerExit"
)

// Provisioning states of a session pool.
const (
	StateInProgress = "InProgress"
	StateSucceeded  = "Succeeded"
	StateFailed     = "Failed"
	StateCanceled   = "Canceled"
	StateDeleting   = "Deleting"
)

// Network statuses.
const (
	EgressEnabled  = "EgressEnabled"
	EgressDisabled = "EgressDisabled"
)

// Defaults for what a request leaves out. The service's own defaults are
// unpublished; these are the CLI's (docs/api.md).
const (
	DefaultMaxConcurrentSessions = 10
	DefaultReadySessionInstances = 5
	DefaultCooldownSeconds       = 300
	DefaultMaxAliveSeconds       = 3600
)

// SessionPool is a Microsoft.App/sessionPools resource. The same type is the
// stored form (the superset of every version) and, after ForVersion, the
// rendered form. Pointer fields distinguish absent from zero.
type SessionPool struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Identity   *Identity         `json:"identity,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties *PoolProperties   `json:"properties,omitempty"`
}

// PoolProperties are a session pool's properties.
type PoolProperties struct {
	EnvironmentID               *string                      `json:"environmentId,omitempty"`
	ContainerType               string                       `json:"containerType,omitempty"`
	PoolManagementType          string                       `json:"poolManagementType,omitempty"`
	NodeCount                   *int32                       `json:"nodeCount,omitempty"`
	ScaleConfiguration          *ScaleConfiguration          `json:"scaleConfiguration,omitempty"`
	Secrets                     []Secret                     `json:"secrets,omitempty"`
	DynamicPoolConfiguration    *DynamicPoolConfiguration    `json:"dynamicPoolConfiguration,omitempty"`
	CustomContainerTemplate     *CustomContainerTemplate     `json:"customContainerTemplate,omitempty"`
	SessionNetworkConfiguration *SessionNetworkConfiguration `json:"sessionNetworkConfiguration,omitempty"`
	ManagedIdentitySettings     []ManagedIdentitySetting     `json:"managedIdentitySettings,omitempty"`
	McpServerSettings           *McpServerSettings           `json:"mcpServerSettings,omitempty"`
	TemplateUpdateStatus        *TemplateUpdateStatus        `json:"templateUpdateStatus,omitempty"`
	PoolManagementEndpoint      string                       `json:"poolManagementEndpoint,omitempty"`
	ProvisioningState           string                       `json:"provisioningState,omitempty"`
	// ProvisioningError says why provisioningState is Failed. Tidepool's
	// own field, rendered by every version (unknown fields are ignored by clients).
	ProvisioningError *ErrorInfo `json:"provisioningError,omitempty"`
}

// ScaleConfiguration bounds a pool's sessions.
type ScaleConfiguration struct {
	MaxConcurrentSessions *int32 `json:"maxConcurrentSessions,omitempty"`
	ReadySessionInstances *int32 `json:"readySessionInstances,omitempty"`
}

// Secret is a pool secret. Value is write-only: stored, never rendered.
type Secret struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// DynamicPoolConfiguration holds the session lifecycle. ExecutionType and
// CooldownPeriodInSeconds are the legacy (before 2025-01-01) shape; they are
// translated to LifecycleConfiguration on input and never stored.
type DynamicPoolConfiguration struct {
	LifecycleConfiguration  *LifecycleConfiguration `json:"lifecycleConfiguration,omitempty"`
	ExecutionType           string                  `json:"executionType,omitempty"`
	CooldownPeriodInSeconds *int32                  `json:"cooldownPeriodInSeconds,omitempty"`
}

// LifecycleConfiguration says when a session ends.
type LifecycleConfiguration struct {
	LifecycleType           string `json:"lifecycleType,omitempty"`
	CooldownPeriodInSeconds *int32 `json:"cooldownPeriodInSeconds,omitempty"`
	MaxAlivePeriodInSeconds *int32 `json:"maxAlivePeriodInSeconds,omitempty"`
}

// CustomContainerTemplate describes a CustomContainer pool's sessions.
type CustomContainerTemplate struct {
	RegistryCredentials *RegistryCredentials `json:"registryCredentials,omitempty"`
	Containers          []SessionContainer   `json:"containers,omitempty"`
	Ingress             *SessionIngress      `json:"ingress,omitempty"`
}

// RegistryCredentials authenticate image pulls. RegistryServer is the
// 2024-02-02-preview name of Server, translated on input and output.
type RegistryCredentials struct {
	Server            string `json:"server,omitempty"`
	RegistryServer    string `json:"registryServer,omitempty"`
	Username          string `json:"username,omitempty"`
	PasswordSecretRef string `json:"passwordSecretRef,omitempty"`
	Identity          string `json:"identity,omitempty"`
}

// SessionContainer is the container a session runs.
type SessionContainer struct {
	Image     string              `json:"image,omitempty"`
	Name      string              `json:"name,omitempty"`
	Command   []string            `json:"command,omitempty"`
	Args      []string            `json:"args,omitempty"`
	Env       []EnvironmentVar    `json:"env,omitempty"`
	Resources *ContainerResources `json:"resources,omitempty"`
	Probes    []SessionProbe      `json:"probes,omitempty"`
}

// EnvironmentVar is a container environment variable, literal or from a secret.
type EnvironmentVar struct {
	Name      string `json:"name"`
	Value     string `json:"value,omitempty"`
	SecretRef string `json:"secretRef,omitempty"`
}

// ContainerResources are a container's cpu (cores) and memory (e.g. "0.5Gi").
type ContainerResources struct {
	CPU    *float64 `json:"cpu,omitempty"`
	Memory string   `json:"memory,omitempty"`
}

// SessionIngress names the port that receives proxied traffic.
type SessionIngress struct {
	TargetPort *int32 `json:"targetPort,omitempty"`
}

// SessionProbe is a liveness or startup probe.
type SessionProbe struct {
	Type                          string        `json:"type,omitempty"`
	HTTPGet                       *ProbeHTTPGet `json:"httpGet,omitempty"`
	TCPSocket                     *ProbeTCP     `json:"tcpSocket,omitempty"`
	FailureThreshold              *int32        `json:"failureThreshold,omitempty"`
	InitialDelaySeconds           *int32        `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds                 *int32        `json:"periodSeconds,omitempty"`
	SuccessThreshold              *int32        `json:"successThreshold,omitempty"`
	TerminationGracePeriodSeconds *int64        `json:"terminationGracePeriodSeconds,omitempty"`
	TimeoutSeconds                *int32        `json:"timeoutSeconds,omitempty"`
}

// ProbeHTTPGet is an HTTP GET probe.
type ProbeHTTPGet struct {
	Host        string       `json:"host,omitempty"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
	Path        string       `json:"path,omitempty"`
	Port        *int32       `json:"port,omitempty"`
	Scheme      string       `json:"scheme,omitempty"`
}

// HTTPHeader is a header a probe sends.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ProbeTCP is a TCP connect probe.
type ProbeTCP struct {
	Host string `json:"host,omitempty"`
	Port *int32 `json:"port,omitempty"`
}

// SessionNetworkConfiguration says whether sessions reach the network.
type SessionNetworkConfiguration struct {
	Status string `json:"status,omitempty"`
}

// ManagedIdentitySetting makes an identity ("system" or a user-assigned
// identity's id) available to sessions.
type ManagedIdentitySetting struct {
	Identity  string `json:"identity"`
	Lifecycle string `json:"lifecycle,omitempty"`
}

// McpServerSettings enable the pool's MCP endpoint (2025-10-02-preview).
type McpServerSettings struct {
	IsMcpServerEnabled        *bool  `json:"isMcpServerEnabled,omitempty"`
	IsMcpServerAPIKeyDisabled *bool  `json:"isMcpServerApiKeyDisabled,omitempty"`
	McpServerEndpoint         string `json:"mcpServerEndpoint,omitempty"`
}

// TemplateUpdateStatus shows a CustomContainer template roll (read-only).
type TemplateUpdateStatus struct {
	ActiveTemplate  *TemplateStatus `json:"activeTemplate,omitempty"`
	DesiredTemplate *TemplateStatus `json:"desiredTemplate,omitempty"`
}

// TemplateStatus is one template of a roll and its sessions.
type TemplateStatus struct {
	Details     string             `json:"details,omitempty"`
	CreatedTime *time.Time         `json:"createdTime,omitempty"`
	Status      TemplatePoolStatus `json:"status"`
	Containers  []SessionContainer `json:"containers,omitempty"`
	Ingress     *SessionIngress    `json:"ingress,omitempty"`
}

// TemplatePoolStatus counts a template's sessions.
type TemplatePoolStatus struct {
	ExpectedCount      int32 `json:"expectedCount"`
	ReadyCount         int32 `json:"readyCount"`
	PendingCount       int32 `json:"pendingCount"`
	ImagePullFailCount int32 `json:"imagePullFailCount"`
	CrashCount         int32 `json:"crashCount"`
	AllocatedCount     int32 `json:"allocatedCount"`
}

// Identity is a ManagedServiceIdentity.
type Identity struct {
	Type                   string                           `json:"type,omitempty"`
	PrincipalID            string                           `json:"principalId,omitempty"`
	TenantID               string                           `json:"tenantId,omitempty"`
	UserAssignedIdentities map[string]*UserAssignedIdentity `json:"userAssignedIdentities,omitempty"`
}

// UserAssignedIdentity holds the read-only ids of a user-assigned identity.
type UserAssignedIdentity struct {
	PrincipalID string `json:"principalId,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// Identity types.
const (
	IdentityNone                       = "None"
	IdentitySystemAssigned             = "SystemAssigned"
	IdentityUserAssigned               = "UserAssigned"
	IdentitySystemAssignedUserAssigned = "SystemAssigned,UserAssigned"
)

// SystemData records who created and last changed a resource.
type SystemData struct {
	CreatedBy          string     `json:"createdBy,omitempty"`
	CreatedByType      string     `json:"createdByType,omitempty"`
	CreatedAt          *time.Time `json:"createdAt,omitempty"`
	LastModifiedBy     string     `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string     `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     *time.Time `json:"lastModifiedAt,omitempty"`
}

// ErrorInfo is an ARM error's code and message.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Int32 returns a pointer to v.
func Int32(v int32) *int32 { return &v }

// Lifecycle returns the pool's lifecycle configuration, never nil after Normalize.
func (p *SessionPool) Lifecycle() *LifecycleConfiguration {
	if p.Properties == nil || p.Properties.DynamicPoolConfiguration == nil {
		return nil
	}
	return p.Properties.DynamicPoolConfiguration.LifecycleConfiguration
}

// Template details in templateUpdateStatus.
const (
	TemplateRunning  = "Running"
	TemplateUpdating = "Updating"
)

// NoteTemplate records in templateUpdateStatus that a CustomContainer pool
// is written with its current template at now: a template that differs
// from the active one becomes the desired one (Updating) until the
// controller has its ready set up; an unchanged one clears any desired
// one. prev is the pool's previous status; other pools have none.
func (p *SessionPool) NoteTemplate(prev *TemplateUpdateStatus, now time.Time) {
	pr := p.Properties
	if pr == nil || pr.ContainerType != ContainerTypeCustomContainer || pr.CustomContainerTemplate == nil {
		if pr != nil {
			pr.TemplateUpdateStatus = nil
		}
		return
	}
	t := pr.CustomContainerTemplate
	snap := &TemplateStatus{Details: TemplateUpdating, CreatedTime: &now, Containers: slices.Clone(t.Containers), Ingress: t.Ingress}
	tus := &TemplateUpdateStatus{}
	if prev != nil {
		tus.ActiveTemplate = prev.ActiveTemplate
	}
	tus.DesiredTemplate = snap
	if a := tus.ActiveTemplate; a != nil && sameJSON(a.Containers, snap.Containers) && sameJSON(a.Ingress, snap.Ingress) {
		tus.DesiredTemplate = nil
	}
	pr.TemplateUpdateStatus = tus
}

// ActivateTemplate makes the desired template the active one, with the
// counts of its sessions: the roll is complete.
func (p *SessionPool) ActivateTemplate(counts TemplatePoolStatus) {
	pr := p.Properties
	if pr == nil || pr.TemplateUpdateStatus == nil {
		return
	}
	tus := pr.TemplateUpdateStatus
	if tus.DesiredTemplate != nil {
		tus.ActiveTemplate, tus.DesiredTemplate = tus.DesiredTemplate, nil
	}
	if tus.ActiveTemplate != nil {
		tus.ActiveTemplate.Details = TemplateRunning
		tus.ActiveTemplate.Status = counts
	}
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
