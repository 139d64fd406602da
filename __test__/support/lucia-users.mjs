// A small in-memory Lucia v2 user adapter: the user side of the split adapter, so the tests
// exercise our session adapter through the real Lucia.
export function memoryUserAdapter() {
  const users = new Map()
  const keys = new Map()
  return () => ({
    getUser: async (id) => users.get(id) ?? null,
    setUser: async (user, key) => {
      users.set(user.id, user)
      if (key) keys.set(key.id, key)
    },
    updateUser: async (id, partial) => users.set(id, { ...users.get(id), ...partial }),
    deleteUser: async (id) => users.delete(id),
    getKey: async (id) => keys.get(id) ?? null,
    getKeysByUserId: async (userId) => [...keys.values()].filter((k) => k.user_id === userId),
    setKey: async (key) => keys.set(key.id, key),
    updateKey: async (id, partial) => keys.set(id, { ...keys.get(id), ...partial }),
    deleteKey: async (id) => keys.delete(id),
    deleteKeysByUserId: async (userId) => {
      for (const [id, k] of keys) if (k.user_id === userId) keys.delete(id)
    },
  })
}
