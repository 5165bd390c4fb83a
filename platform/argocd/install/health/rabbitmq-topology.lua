-- Health of the Messaging Topology Operator's objects (Queue, Policy, User, Permission,
-- Exchange), in place of Argo CD's built-in checks, which call an object the operator
-- has not looked at yet "Unknown" (so a later sync wave would not wait for it) and drop
-- the operator's reason when it fails. The operator writes one condition, Ready, and
-- records the generation it applied only when it succeeded.
if obj.metadata.deletionTimestamp ~= nil then
  return {status = "Progressing", message = "Being deleted by the operator"}
end
local status = obj.status
local ready = nil
if status ~= nil and status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  return {status = "Progressing", message = "Waiting for the Messaging Topology Operator"}
end
if ready.status == "False" then
  return {status = "Degraded", message = ready.message or ready.reason or "Not applied"}
end
if ready.status ~= "True" then
  return {status = "Progressing", message = ready.message or "Being applied"}
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration or 0) < generation then
  return {status = "Progressing", message = "The operator has not applied the latest change yet"}
end
if obj.kind == "User" and status.credentials == nil then
  return {status = "Progressing", message = "Waiting for the user's credentials Secret"}
end
return {status = "Healthy", message = "Applied to RabbitMQ"}
