// A small in-memory lucia-auth (0.x/1.x) user adapter: the user side of the split adapter, so
// the tests drive our session adapter through the real lucia-auth.
export function lucia1UserAdapter() {
  const users = new Map()
  const keys = new Map()
  return () => ({
    getUser: async (id) => users.get(id) ?? null,
    setUser: async (id, attributes, key) => {
      const user = { id, ...attributes }
      users.set(id, user)
      if (key) keys.set(key.id, key)
      return user
    },
    deleteUser: async (id) => {
      users.delete(id)
    },
    updateUserAttributes: async (id, attributes) => {
      const user = { ...users.get(id), ...attributes }
      users.set(id, user)
      return user
    },
    setKey: async (key) => {
      keys.set(key.id, key)
    },
    deleteNonPrimaryKey: async (...ids) => {
      for (const id of ids) keys.delete(id)
    },
    deleteKeysByUserId: async (userId) => {
      for (const [id, k] of keys) if (k.user_id === userId) keys.delete(id)
    },
    updateKeyPassword: async (id, hashed) => {
      keys.set(id, { ...keys.get(id), hashed_password: hashed })
    },
    getKey: async (id) => keys.get(id) ?? null,
    getKeysByUserId: async (userId) => [...keys.values()].filter((k) => k.user_id === userId),
  })
}
