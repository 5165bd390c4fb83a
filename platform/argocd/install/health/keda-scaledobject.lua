-- Health of KEDA's ScaledObject (keda.sh/v1alpha1, as KEDA 2.20 writes it), for the models
-- that sleep (autoscaling.minReplicas 0). A model asleep at zero replicas is Healthy: that
-- is its normal state. Waking, its new HPA may not have metrics for a moment (HPAActive
-- False): Progressing, never Degraded, so a normal scale-up never fails a sync or pages.
-- Degraded is what needs a person: KEDA refused the object, or cannot read the queue
-- (Ready False, with KEDA's reason), or a trigger fell back.
if obj.metadata.deletionTimestamp ~= nil then
  return {status = "Progressing", message = "Being deleted"}
end
local conditions = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end
local function said(condition, otherwise)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return otherwise
end
if conditions.Paused ~= nil and conditions.Paused.status == "True" then
  return {status = "Suspended", message = said(conditions.Paused, "Scaling is paused")}
end
local ready = conditions.Ready
if ready == nil then
  return {status = "Progressing", message = "Waiting for KEDA to check the ScaledObject"}
end
if ready.status == "False" then
  return {status = "Degraded", message = said(ready, "KEDA cannot scale it")}
end
if conditions.Fallback ~= nil and conditions.Fallback.status == "True" then
  return {status = "Degraded", message = said(conditions.Fallback, "A trigger is falling back")}
end
if ready.status ~= "True" then
  return {status = "Progressing", message = said(ready, "KEDA is checking the triggers")}
end
local hpa = conditions.HPAActive
if hpa ~= nil and hpa.status == "False" then
  return {status = "Progressing", message = said(hpa, "The HPA has no metrics yet")}
end
if conditions.Active ~= nil and conditions.Active.status == "True" then
  return {status = "Healthy", message = "Awake: requests are waiting or running"}
end
return {status = "Healthy", message = "Asleep or idle: no requests waiting"}
